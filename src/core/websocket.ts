// WebSocket (RFC 6455) for the admin server's streaming endpoints: the
// opening handshake's accept key, the frame parser (client → server) and
// the frame encoder (server → client). No extensions, no subprotocols.
//
// The parser follows parse-result.ts: it gets the bytes received so far,
// keeps no state, and answers need-more, invalid (`closeCode` is the close
// status to send: 1002 protocol error, 1009 too big) or one frame with
// `consumed`. Client frames must be masked (§5.1); control frames are at
// most 125 bytes and never fragmented (§5.5); reserved bits and opcodes
// are refused, since no extension was negotiated (§5.2).

import { base64Decode, base64Encode, latin1Encode, utf8Encode } from './bytes.js'
import { show } from './errors.js'
import { NEED_MORE, type Invalid, type NeedMore, type Parsed } from './parse-result.js'

export const OP = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const

export const CLOSE = { NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL: 1002, INVALID_DATA: 1007, TOO_BIG: 1009 } as const

export interface Frame {
  fin: boolean
  opcode: number
  /** Unmasked. */
  payload: Uint8Array
}

export interface WsInvalid extends Invalid {
  readonly closeCode: number
}

export type FrameResult = NeedMore | WsInvalid | Parsed<Frame>

function bad(error: string, closeCode: number = CLOSE.PROTOCOL): WsInvalid {
  return { status: 'invalid', error, closeCode }
}

/** Parse one client frame from the start of buf; payloads over maxPayload are refused (1009). */
export function parseClientFrame(buf: Uint8Array, maxPayload: number): FrameResult {
  if (buf.length < 2) return NEED_MORE
  const b0 = buf[0]!
  const b1 = buf[1]!
  const fin = (b0 & 0x80) !== 0
  const opcode = b0 & 0x0f
  if ((b0 & 0x70) !== 0) return bad(`websocket: reserved bits ${show((b0 & 0x70) >> 4)} set without an extension`)
  const control = opcode >= 0x8
  if (opcode !== 0 && opcode !== 1 && opcode !== 2 && opcode !== 8 && opcode !== 9 && opcode !== 10) {
    return bad(`websocket: unknown opcode ${show(opcode)}`)
  }
  if ((b1 & 0x80) === 0) return bad('websocket: a client frame is not masked')
  let len = b1 & 0x7f
  let at = 2
  if (control && (len > 125 || !fin))
    return bad(`websocket: control frame ${show(opcode)} is fragmented or over 125 bytes`)
  if (len === 126) {
    if (buf.length < 4) return NEED_MORE
    len = (buf[2]! << 8) | buf[3]!
    if (len < 126) return bad(`websocket: length ${len} not in its shortest form`)
    at = 4
  } else if (len === 127) {
    if (buf.length < 10) return NEED_MORE
    if ((buf[2]! & 0x80) !== 0) return bad('websocket: 64-bit length with the top bit set')
    const hi = buf[2]! * 0x1000000 + ((buf[3]! << 16) | (buf[4]! << 8) | buf[5]!)
    const lo = buf[6]! * 0x1000000 + ((buf[7]! << 16) | (buf[8]! << 8) | buf[9]!)
    if (hi >= 0x200000) return bad('websocket: frame length over 2^53', CLOSE.TOO_BIG)
    len = hi * 0x100000000 + lo
    if (len < 65536) return bad(`websocket: length ${len} not in its shortest form`)
    at = 10
  }
  if (len > maxPayload)
    return bad(`websocket: frame of ${len} bytes is over the ${maxPayload}-byte limit`, CLOSE.TOO_BIG)
  if (buf.length < at + 4 + len) return NEED_MORE
  const mask = buf.subarray(at, at + 4)
  at += 4
  const payload = new Uint8Array(len)
  for (let i = 0; i < len; i++) payload[i] = buf[at + i]! ^ mask[i & 3]!
  if (opcode === OP.CLOSE && len === 1) return bad('websocket: close frame with a 1-byte payload')
  return { status: 'ok', consumed: at + len, fin, opcode, payload }
}

/** A server frame (never masked, always final). */
export function encodeFrame(opcode: number, payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === 'string' ? utf8Encode(payload) : payload
  const n = body.length
  const headLen = n < 126 ? 2 : n < 65536 ? 4 : 10
  const out = new Uint8Array(headLen + n)
  out[0] = 0x80 | opcode
  if (n < 126) out[1] = n
  else if (n < 65536) {
    out[1] = 126
    out[2] = n >> 8
    out[3] = n & 0xff
  } else {
    out[1] = 127
    const hi = Math.floor(n / 0x100000000)
    out[6] = hi & 0xff // sizes here are far below 2^40; bytes 2-5 stay 0
    for (let i = 0; i < 4; i++) out[9 - i] = (n >>> (8 * i)) & 0xff
  }
  out.set(body, headLen)
  return out
}

/** The payload of a close frame: the status code, then a UTF-8 reason (cut to fit 125 bytes). */
export function closePayload(code: number, reason = ''): Uint8Array {
  let text = utf8Encode(reason)
  if (text.length > 123) text = latin1Encode(reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 123))
  const out = new Uint8Array(2 + text.length)
  out[0] = code >> 8
  out[1] = code & 0xff
  out.set(text, 2)
  return out
}

/** The close code in a received close payload; 1005 (none) when it is empty. */
export function closeCodeOf(payload: Uint8Array): number {
  return payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Whether a Sec-WebSocket-Key is what §4.1 asks: base64 of 16 bytes. */
export function isWebSocketKey(key: string): boolean {
  const raw = base64Decode(key)
  return raw !== null && raw.length === 16
}

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2); `sha1` is the runtime's. */
export function acceptKey(key: string, sha1: (b: Uint8Array) => Uint8Array): string {
  return base64Encode(sha1(latin1Encode(key + WS_GUID)))
}
