// ubus messages (ubus's ubusmsg.h): an 8-byte header {u8 version, u8 type,
// be16 seq, be32 peer} followed by one blob_attr (id 0) holding the UBUS_ATTR_*
// attributes. Values of those attributes are raw blob payloads (u32, NUL
// string, u8, nested attrs); DATA and SIGNATURE hold blobmsg tables.

import { concatBytes as concat } from '../bytes.js'
import { BlobError, cString, encodeAttr, parseAttrs, readCString, readU32, u32 } from './blob.js'

export const MSG = {
  HELLO: 0,
  STATUS: 1,
  DATA: 2,
  PING: 3,
  LOOKUP: 4,
  INVOKE: 5,
  ADD_OBJECT: 6,
  REMOVE_OBJECT: 7,
  SUBSCRIBE: 8,
  UNSUBSCRIBE: 9,
  NOTIFY: 10,
  MONITOR: 11,
} as const

export const ATTR = {
  STATUS: 1,
  OBJPATH: 2,
  OBJID: 3,
  METHOD: 4,
  OBJTYPE: 5,
  SIGNATURE: 6,
  DATA: 7,
  TARGET: 8,
  ACTIVE: 9,
  NO_REPLY: 10,
  SUBSCRIBERS: 11,
  USER: 12,
  GROUP: 13,
} as const

/** ubus's UBUS_STATUS_* codes (what `ubus call` prints as "Command failed: ..."). */
export const STATUS = {
  OK: 0,
  INVALID_COMMAND: 1,
  INVALID_ARGUMENT: 2,
  METHOD_NOT_FOUND: 3,
  NOT_FOUND: 4,
  NO_DATA: 5,
  PERMISSION_DENIED: 6,
  TIMEOUT: 7,
  NOT_SUPPORTED: 8,
  UNKNOWN_ERROR: 9,
  CONNECTION_FAILED: 10,
} as const

/** The object ubusd routes `ubus send` / `ubus listen` through. */
export const EVENT_OBJECT = 1

const HEADER_LEN = 8
/** ubusd refuses messages above UBUS_MAX_MSGLEN (1 MiB); so do we. */
const MAX_MESSAGE = 1 << 20

type AttrKind = 'u32' | 'string' | 'u8' | 'nested'
const KIND: Record<number, AttrKind> = {
  [ATTR.STATUS]: 'u32',
  [ATTR.OBJPATH]: 'string',
  [ATTR.OBJID]: 'u32',
  [ATTR.METHOD]: 'string',
  [ATTR.OBJTYPE]: 'u32',
  [ATTR.SIGNATURE]: 'nested',
  [ATTR.DATA]: 'nested',
  [ATTR.TARGET]: 'u32',
  [ATTR.ACTIVE]: 'u8',
  [ATTR.NO_REPLY]: 'u8',
  [ATTR.SUBSCRIBERS]: 'nested',
  [ATTR.USER]: 'string',
  [ATTR.GROUP]: 'string',
}

export type AttrValue = number | string | Uint8Array

export interface Message {
  type: number
  seq: number
  peer: number
  /** UBUS_ATTR_* id → value: numbers for u32/u8, strings, raw payload for nested ones. */
  attrs: Map<number, AttrValue>
}

export function encodeMessage(m: Message): Uint8Array {
  const parts: Uint8Array[] = []
  for (const [id, v] of m.attrs) {
    const kind = KIND[id]
    if (kind === undefined) throw new BlobError(`unknown ubus attribute ${id}`)
    let payload: Uint8Array
    if (kind === 'u32') payload = u32(v as number)
    else if (kind === 'u8') payload = new Uint8Array([v as number])
    else if (kind === 'string') payload = cString(v as string)
    else payload = v as Uint8Array
    parts.push(encodeAttr(id, payload))
  }
  const body = encodeAttr(0, concat(parts))
  const out = new Uint8Array(HEADER_LEN + body.length)
  const dv = new DataView(out.buffer)
  dv.setUint8(0, 0)
  dv.setUint8(1, m.type)
  dv.setUint16(2, m.seq & 0xffff)
  dv.setUint32(4, m.peer >>> 0)
  out.set(body, HEADER_LEN)
  return out
}

/** The message's length from its first 12 bytes, or null when fewer are there. Throws on a bad length. */
function messageLength(buf: Uint8Array): number | null {
  if (buf.length < HEADER_LEN + 4) return null
  const len = new DataView(buf.buffer, buf.byteOffset + HEADER_LEN, 4).getUint32(0) & 0xffffff
  if (len < 4) throw new BlobError(`message blob length ${len} is below its header`)
  // ubusd reads exactly this many bytes (blob_raw_len), padding not included.
  const total = HEADER_LEN + len
  if (total > MAX_MESSAGE) throw new BlobError(`message of ${total} bytes exceeds ${MAX_MESSAGE}`)
  return total
}

/** One whole message (as measured by messageLength). */
export function decodeMessage(buf: Uint8Array): Message {
  const total = messageLength(buf)
  if (total === null || buf.length < total) throw new BlobError(`message cut short (${buf.length} bytes)`)
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const version = dv.getUint8(0)
  if (version !== 0) throw new BlobError(`unknown ubus message version ${version}`)
  const type = dv.getUint8(1)
  if (type > MSG.MONITOR) throw new BlobError(`unknown ubus message type ${type}`)
  const [root] = parseAttrs(buf.subarray(HEADER_LEN, total))
  if (!root) throw new BlobError('message without a body')
  const attrs = new Map<number, AttrValue>()
  for (const a of parseAttrs(root.data)) {
    const kind = KIND[a.id]
    // Attributes a newer ubusd adds are skipped, as libubus does.
    if (kind === undefined) continue
    const what = `ubus attribute ${a.id}`
    if (kind === 'u32') attrs.set(a.id, readU32(a.data, what))
    else if (kind === 'u8') {
      if (a.data.length !== 1) throw new BlobError(`${what}: expected 1 byte, got ${a.data.length}`)
      attrs.set(a.id, a.data[0]!)
    } else if (kind === 'string') attrs.set(a.id, readCString(a.data, what))
    else attrs.set(a.id, a.data)
  }
  return { type, seq: dv.getUint16(2), peer: dv.getUint32(4), attrs }
}

/** Splits a byte stream into whole messages. */
export class MessageReader {
  private buf: Uint8Array = new Uint8Array(0)

  /** Append bytes; returns the messages now complete. Throws BlobError on a bad message (the stream is then unusable). */
  push(chunk: Uint8Array): Message[] {
    this.buf = this.buf.length === 0 ? chunk.slice() : concat([this.buf, chunk])
    const out: Message[] = []
    for (;;) {
      const total = messageLength(this.buf)
      if (total === null || this.buf.length < total) return out
      out.push(decodeMessage(this.buf.subarray(0, total)))
      this.buf = this.buf.slice(total)
    }
  }
}

export function num(m: Message, id: number): number | undefined {
  const v = m.attrs.get(id)
  return typeof v === 'number' ? v : undefined
}

export function str(m: Message, id: number): string | undefined {
  const v = m.attrs.get(id)
  return typeof v === 'string' ? v : undefined
}

export function nested(m: Message, id: number): Uint8Array | undefined {
  const v = m.attrs.get(id)
  return v instanceof Uint8Array ? v : undefined
}
