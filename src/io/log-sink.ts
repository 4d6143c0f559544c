// The process logger: whole lines to stderr, stamped with the wall clock.

import * as native from 'ugate:native'
import { type LogLevel, type Logger, createLogger } from '../core/log.js'

export function stderrLogger(level: LogLevel): Logger {
  return createLogger(level, native.wallClock, (line) => native.writeStderr(line + '\n'))
}
