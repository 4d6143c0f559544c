// `ugate ctl status|connections`: ask a running gateway over its admin unix
// socket and print its JSON answer (for people and for the LuCI rpcd plugin).

import * as native from 'ugate:native'
import { Cancel } from '../core/cancel.js'
import type { CtlMethod } from '../core/cli.js'
import { latin1Encode, utf8Decode } from '../core/bytes.js'
import { cancelAfter, waitWritable } from './loop.js'
import { closeQuietly, describeError } from './sockets.js'
import { EofError, HandshakeStream } from './stream.js'

const TIMEOUT_MS = 5000
const MAX_ANSWER = 4 * 1024 * 1024

export function runCtl(socket: string, method: CtlMethod): void {
  ask(socket, method).then(
    (answer) => {
      native.writeStdout(answer.endsWith('\n') ? answer : `${answer}\n`)
      native.exit(0)
    },
    (e: unknown) => {
      const error = `${socket}: ${e instanceof EofError ? 'no answer' : describeError(e)}`
      native.writeStdout(`${JSON.stringify({ running: false, error })}\n`)
      native.exit(1)
    },
  )
}

async function ask(socket: string, method: CtlMethod): Promise<string> {
  const cancel = new Cancel()
  const stop = cancelAfter(cancel, TIMEOUT_MS, 'timeout')
  const fd = native.connectUnix(socket)
  try {
    await waitWritable(fd, cancel)
    const err = native.socketError(fd)
    if (err !== 0) throw Object.assign(new Error(native.strerror(err)), { code: native.errnoName(err), errno: err })
    const s = new HandshakeStream(fd, cancel)
    await s.writeAll(latin1Encode(`${JSON.stringify({ method })}\n`))
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
    closeQuietly(fd)
  }
}
