// Config-file helpers for the end-to-end tests of the proxy listeners:
// write a JSON config to a temp file, start ugate with it, and read the
// access lines of one listener.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startUgate } from './ugate.js'
import type { LogLine, StartOptions, TestLike, Ugate } from './ugate.js'
import { tempDir } from './temp.js'

/** Write `config` (a JSON value, or text as is) to a fresh temp dir removed on teardown; returns the file. */
export function writeConfigFile(t: TestLike, config: unknown): string {
  const dir = tempDir(t, 'ugate-config-')
  const file = join(dir, 'ugate.json')
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2))
  return file
}

/** `ugate run --config FILE [args]` with `config` in a temp file; waits for `ready`. */
export function startConfig(
  t: TestLike,
  config: unknown,
  opts: StartOptions & { args?: string[] } = {},
): Promise<Ugate> {
  return startUgate(t, ['run', '--config', writeConfigFile(t, config), ...(opts.args ?? [])], opts)
}

/** Parsed `conn` lines of one listener seen so far. */
export function connsOf(ug: Ugate, listener: string): LogLine[] {
  return ug.events('conn').filter((c) => c.fields.listener === listener)
}

/** Wait until `listener` has logged `count` conn lines; returns them (in log order). */
export async function waitConnsOf(ug: Ugate, listener: string, count: number, timeoutMs?: number): Promise<LogLine[]> {
  await ug.waitForLines(new RegExp(` info conn listener=${listener} `), count, timeoutMs)
  return connsOf(ug, listener)
}

/** A listener entry for the config (port 0 on 127.0.0.1 unless `listen` is given). */
export function listener(name: string, type: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type, listen: '127.0.0.1:0', ...extra }
}

/** Config defaults for the proxy tests: short shutdown grace, quick handshake timeout. */
export function proxyConfig(listeners: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    log: { level: 'info' },
    relay: { splice: true, idleTimeout: 60, shutdownGrace: 2 },
    limits: { handshakeTimeout: 10 },
    listeners,
    ...extra,
  }
}
