// ugate on ubus: one connection to ubusd's unix socket, the object `ugate`
// registered on it, calls answered, events sent. ubusd absent or
// restarting is not an error: the connection is retried on a bounded
// back-off timer and the object registered again each time.

import * as native from 'ugate:native'
import type { Logger } from '../core/log.js'
import { BlobError, type JsonValue } from '../core/ubus/blob.js'
import { type Signature, addObjectMessage, eventMessage, readInvocation, replyMessages } from '../core/ubus/client.js'
import { ATTR, MSG, type Message, MessageReader, STATUS, encodeMessage, num } from '../core/ubus/message.js'
import { closeQuietly, describeError } from './sockets.js'

export type JsonObject = { [k: string]: JsonValue }

export interface UbusMethod {
  /** Argument name → blobmsg type (ARG in core/ubus/client.ts). */
  args: Record<string, number>
  /** The reply object, or a UBUS_STATUS_* code (a number) for an error. */
  call(args: JsonObject): JsonObject | number
}

export interface UbusClient {
  /** Send event `id` (when registered; dropped otherwise: nobody could listen). */
  event(id: string, data: JsonObject): void
  close(): void
}

const RETRY_MIN_MS = 1000
const RETRY_MAX_MS = 30000
const READ_MAX = 65536

export function startUbus(path: string, object: string, methods: Record<string, UbusMethod>, log: Logger): UbusClient {
  let fd = -1
  let reader = new MessageReader()
  let out: Uint8Array[] = []
  let seq = 1
  let objectId = -1
  let registered = false
  /** Wait before the next attempt: doubles on each failure, reset by a registration. */
  let delay = RETRY_MIN_MS
  let failing = false
  let retryTimer = 0
  let closed = false
  const signature: Signature = {}
  for (const m of Object.keys(methods)) signature[m] = methods[m]!.args

  const send = (m: Message) => {
    out.push(encodeMessage(m))
    flush()
  }

  const flush = () => {
    while (out.length > 0) {
      let n: number
      try {
        n = native.write(fd, out[0]!)
      } catch (e) {
        return lost(describeError(e))
      }
      if (n === 0) break
      out[0] = out[0]!.subarray(n)
      if (out[0].length === 0) out.shift()
    }
    native.watch(fd, out.length > 0 ? native.EV_READ | native.EV_WRITE : native.EV_READ, onReady)
  }

  const onReady = (revents: number) => {
    if (revents & native.EV_WRITE && out.length > 0) flush()
    if (fd < 0 || !(revents & (native.EV_READ | native.EV_HUP | native.EV_ERR))) return
    let chunk: ArrayBuffer | null
    try {
      chunk = native.read(fd, READ_MAX)
    } catch (e) {
      return lost(describeError(e))
    }
    if (chunk === null) return
    if (chunk.byteLength === 0) return lost('ubusd closed the connection')
    let msgs: Message[]
    try {
      msgs = reader.push(new Uint8Array(chunk))
    } catch (e) {
      return lost(`bad message: ${e instanceof BlobError ? e.message : String(e)}`)
    }
    for (const m of msgs) {
      handle(m)
      if (fd < 0) return
    }
  }

  const handle = (m: Message) => {
    switch (m.type) {
      case MSG.HELLO:
        // The first message on every connection: now register (always seq 1).
        return send(addObjectMessage(1, object, signature))
      case MSG.DATA:
        if (m.seq === 1 && !registered) objectId = num(m, ATTR.OBJID) ?? -1
        return
      case MSG.STATUS: {
        if (m.seq !== 1 || registered) return
        const status = num(m, ATTR.STATUS)
        if (status !== STATUS.OK || objectId < 0) return lost(`registering ${object} failed: status ${status}`)
        registered = true
        failing = false
        delay = RETRY_MIN_MS
        log.info('ubus-registered', { object, id: objectId, socket: path })
        return
      }
      case MSG.INVOKE:
        return invoke(m)
      default:
        // Subscribe/unsubscribe notices: nobody subscribes to ugate's object.
        return
    }
  }

  const invoke = (m: Message) => {
    const call = readInvocation(m)
    if (typeof call === 'string') return log.warn('ubus-bad-invoke', { error: call })
    const reply = (status: number, data?: JsonObject) => {
      if (!call.noReply) for (const r of replyMessages(call, status, data)) send(r)
    }
    const method = call.object === objectId ? methods[call.method] : undefined
    if (method === undefined) return reply(STATUS.METHOD_NOT_FOUND)
    let result: JsonObject | number
    try {
      result = method.call(call.args)
    } catch (e) {
      log.error('ubus-call-failed', { method: call.method, error: describeError(e) })
      return reply(STATUS.UNKNOWN_ERROR)
    }
    log.debug('ubus-call', { method: call.method, peer: call.peer })
    if (typeof result === 'number') reply(result)
    else reply(STATUS.OK, result)
  }

  /** The connection is gone (or never came up): close it and try again later. */
  const lost = (why: string) => {
    if (fd >= 0) closeQuietly(fd)
    fd = -1
    if (registered) log.warn('ubus-lost', { socket: path, error: why, retryMs: delay })
    else if (!failing) log.warn('ubus-unavailable', { socket: path, error: why, retryMs: delay })
    else log.debug('ubus-retry', { socket: path, error: why, retryMs: delay })
    registered = false
    failing = true
    if (!closed) retryTimer = native.setTimeout(connect, delay)
    delay = Math.min(delay * 2, RETRY_MAX_MS)
  }

  const connect = () => {
    retryTimer = 0
    reader = new MessageReader()
    out = []
    objectId = -1
    try {
      fd = native.connectUnix(path)
    } catch (e) {
      return lost(describeError(e))
    }
    native.watch(fd, native.EV_READ, onReady)
  }

  connect()
  return {
    event: (id, data) => {
      // seq 1 stays the registration's.
      seq = seq >= 0xffff ? 2 : seq + 1
      if (registered) send(eventMessage(seq, id, data))
    },
    close: () => {
      closed = true
      if (retryTimer !== 0) native.clearTimeout(retryTimer)
      if (fd >= 0) closeQuietly(fd)
      fd = -1
    },
  }
}
