// The process logger: whole lines to stderr, stamped with the wall clock;
// or, under procd, datagrams to the syslog socket at each line's priority
// (procd files a service's stderr as daemon.err, whatever the line says).

import * as native from 'ugate:native'
import { utf8Encode } from '../core/bytes.js'
import { type ControlledLogger, type LogLevel, createLogger } from '../core/log.js'
import { syslogDatagram } from '../core/syslog.js'
import { closeQuietly, describeError } from './sockets.js'

export function stderrLogger(level: LogLevel): ControlledLogger {
  return createLogger(
    level,
    native.wallClock,
    (line) => native.writeStderr(line + '\n'),
    (text) => native.writeStderr(text),
  )
}

/**
 * Lines to the syslog socket at `path` (/dev/log). When it cannot be reached
 * (logd restarting), the socket is reopened at the next line, and lines that
 * still cannot go there go to stderr, so none is lost silently.
 */
export function syslogLogger(level: LogLevel, path: string): ControlledLogger {
  let fd = -1
  const open = (): string | null => {
    try {
      fd = native.connectUnixDgram(path)
      return null
    } catch (e) {
      fd = -1
      return describeError(e)
    }
  }
  const send = (dgram: Uint8Array): string | null => {
    if (fd < 0) {
      const err = open()
      if (err !== null) return err
    }
    try {
      if (native.write(fd, dgram) === dgram.length) return null
      return 'syslog socket full'
    } catch (e) {
      closeQuietly(fd)
      fd = -1
      return describeError(e)
    }
  }
  const err = open()
  if (err !== null) native.writeStderr(`ugate: syslog ${path}: ${err}; logging to stderr until it is back\n`)
  return createLogger(level, native.wallClock, (line, lvl, message) => {
    const dgram = utf8Encode(syslogDatagram(lvl, message, native.pid(), new Date(native.wallClock())))
    // A reader that went away (logd restarted) fails once: reconnect and retry.
    if (send(dgram) === null || send(dgram) === null) return
    native.writeStderr(line + '\n')
  })
}
