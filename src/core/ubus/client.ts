// The messages a ubus client object sends, and what it makes of ubusd's:
// register (ADD_OBJECT with a signature), answer an INVOKE (DATA then
// STATUS), send an event (INVOKE "send" on the event object). Pure: the
// connection in src/io/ubus.ts moves the bytes.

import { concatBytes as concat } from '../bytes.js'
import { BLOBMSG, type JsonValue, decodeTable, encodeField, encodeTable } from './blob.js'
import { ATTR, EVENT_OBJECT, MSG, type Message, STATUS, nested, num, str } from './message.js'

/** Argument name → blobmsg type, per method: what `ubus -v list` shows. */
export type Signature = Record<string, Record<string, number>>

export const ARG = { STRING: BLOBMSG.STRING, INT32: BLOBMSG.INT32, BOOL: BLOBMSG.INT8, TABLE: BLOBMSG.TABLE } as const

export function addObjectMessage(seq: number, path: string, methods: Signature): Message {
  const sig = concat(Object.keys(methods).map((m) => encodeField(m, methods[m]!)))
  return {
    type: MSG.ADD_OBJECT,
    seq,
    peer: 0,
    attrs: new Map<number, number | string | Uint8Array>([
      [ATTR.OBJPATH, path],
      [ATTR.SIGNATURE, sig],
    ]),
  }
}

export function eventMessage(seq: number, id: string, data: { [k: string]: JsonValue }): Message {
  return {
    type: MSG.INVOKE,
    seq,
    peer: EVENT_OBJECT,
    attrs: new Map<number, number | string | Uint8Array>([
      [ATTR.OBJID, EVENT_OBJECT],
      [ATTR.METHOD, 'send'],
      [ATTR.DATA, encodeTable({ id, data })],
    ]),
  }
}

/** A call ubusd forwards to our object. */
export interface Invocation {
  seq: number
  /** The caller's client id: replies go back to it. */
  peer: number
  object: number
  method: string
  args: { [k: string]: JsonValue }
  noReply: boolean
}

/** An INVOKE message → the call, or an error text when it is malformed. */
export function readInvocation(m: Message): Invocation | string {
  const object = num(m, ATTR.OBJID)
  const method = str(m, ATTR.METHOD)
  if (object === undefined) return 'invoke without object id'
  if (method === undefined) return 'invoke without method'
  const data = nested(m, ATTR.DATA)
  let args: { [k: string]: JsonValue } = {}
  if (data !== undefined) {
    try {
      args = decodeTable(data)
    } catch (e) {
      return `invoke ${method}: ${e instanceof Error ? e.message : String(e)}`
    }
  }
  return { seq: m.seq, peer: m.peer, object, method, args, noReply: num(m, ATTR.NO_REPLY) === 1 }
}

/** The answer to a call: DATA with the result (if any), then STATUS, as libubus's ubus_send_reply + ubus_complete_deferred_request send them. */
export function replyMessages(call: Invocation, status: number, data?: { [k: string]: JsonValue }): Message[] {
  const out: Message[] = []
  if (data !== undefined && status === STATUS.OK)
    out.push({
      type: MSG.DATA,
      seq: call.seq,
      peer: call.peer,
      attrs: new Map<number, number | string | Uint8Array>([
        [ATTR.OBJID, call.object],
        [ATTR.DATA, encodeTable(data)],
      ]),
    })
  out.push({
    type: MSG.STATUS,
    seq: call.seq,
    peer: call.peer,
    attrs: new Map<number, number | string | Uint8Array>([
      [ATTR.STATUS, status],
      [ATTR.OBJID, call.object],
    ]),
  })
  return out
}
