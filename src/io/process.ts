// Process-level native calls main.ts needs, so only src/io imports ugate:native.

import * as native from 'ugate:native'
import { ConfigError } from '../core/errors.js'
import { describeError } from './sockets.js'

export const argv: readonly string[] = native.argv
export const engineVersion: string = native.engineVersion

export function writeStdout(s: string): void {
  native.writeStdout(s)
}

export function writeStderr(s: string): void {
  native.writeStderr(s)
}

export function exit(code: number): never {
  return native.exit(code)
}

/** A config file's text; a file that cannot be read is a ConfigError naming it. */
export function readConfigText(path: string): string {
  try {
    return native.readFile(path)
  } catch (e) {
    throw new ConfigError(path, `cannot read config file: ${describeError(e)}`)
  }
}
