// `ugate ctl`: ask a running gateway over its admin unix socket and print
// the answer as tables (src/core/ctl-format.ts) or, with --json, as the JSON
// object it is (for scripts and the LuCI rpcd plugin). `traffic` asks once a
// second and prints a line each time until interrupted.

import * as native from 'ugate:native'
import { Cancel } from '../core/cancel.js'
import type { Command } from '../core/cli.js'
import { latin1Encode, utf8Decode } from '../core/bytes.js'
import { formatConnections, formatRules, formatStatus, formatTraffic, trafficSample } from '../core/ctl-format.js'
import { cancelAfter, waitWritable } from './loop.js'
import { closeQuietly, describeError } from './sockets.js'
import { EofError, HandshakeStream } from './stream.js'

const TIMEOUT_MS = 5000
const MAX_ANSWER = 4 * 1024 * 1024

type Ctl = Extract<Command, { kind: 'ctl' }>
type Answer = Record<string, unknown>

export function runCtl(cmd: Ctl): void {
  run(cmd).then(
    (code) => native.exit(code),
    (e: unknown) => {
      const error = `${cmd.socket}: ${e instanceof EofError ? 'no answer' : describeError(e)}`
      if (cmd.json) native.writeStdout(`${JSON.stringify({ running: false, error })}\n`)
      else native.writeStderr(`ugate: not running? cannot ask ${error}\n`)
      native.exit(1)
    },
  )
}

async function run(cmd: Ctl): Promise<number> {
  if (cmd.method === 'traffic') return traffic(cmd)
  const request: Answer = { method: cmd.method }
  if (cmd.id !== undefined) request.id = cmd.id
  const text = await ask(cmd.socket, request)
  const answer = JSON.parse(text) as Answer
  const failed = typeof answer.error === 'string'
  if (cmd.json) native.writeStdout(text.endsWith('\n') ? text : `${text}\n`)
  else if (failed) native.writeStderr(`ugate: ${answer.error as string}\n`)
  else native.writeStdout(format(cmd.method, answer))
  return failed ? 1 : 0
}

function format(method: Ctl['method'], a: Answer): string {
  switch (method) {
    case 'status':
      return formatStatus(a)
    case 'connections':
      return formatConnections(a)
    case 'rules':
      return formatRules(a)
    case 'close':
      return `closed ${String(a.closed)}\n`
    case 'traffic':
      return ''
  }
}

/** Never resolves: a line per second until the process is interrupted (or the daemon goes). */
async function traffic(cmd: Ctl): Promise<number> {
  const totals = async () => JSON.parse(await ask(cmd.socket, { method: 'traffic' })) as { up: number; down: number }
  let last = await totals()
  for (;;) {
    await new Promise<void>((r) => native.setTimeout(r, 1000))
    const now = await totals()
    const s = trafficSample(last, now)
    native.writeStdout(cmd.json ? `${JSON.stringify(s)}\n` : formatTraffic(s))
    last = now
  }
}

async function ask(socket: string, request: Answer): Promise<string> {
  const cancel = new Cancel()
  const stop = cancelAfter(cancel, TIMEOUT_MS, 'timeout')
  const fd = native.connectUnix(socket)
  try {
    await waitWritable(fd, cancel)
    const err = native.socketError(fd)
    if (err !== 0) throw Object.assign(new Error(native.strerror(err)), { code: native.errnoName(err), errno: err })
    const s = new HandshakeStream(fd, cancel)
    await s.writeAll(latin1Encode(`${JSON.stringify(request)}\n`))
    for (;;) {
      try {
        await s.fill(MAX_ANSWER)
      } catch (e) {
        if (e instanceof EofError && s.buffered.length > 0) break
        throw e
      }
    }
    const text = utf8Decode(s.buffered)
    if (text === null) throw new Error('the answer is not UTF-8')
    return text
  } finally {
    stop()
    cancel.release()
    closeQuietly(fd)
  }
}
