// libubox's blob/blobmsg TLV format, as ubusd speaks it.
//   blob_attr: be32 id_len (bit 31 extended, bits 24-30 id, bits 0-23 length
//   including this 4-byte header), then the payload, padded to 4 bytes.
//   blobmsg: an extended blob_attr whose id is the type and whose payload
//   starts with {be16 namelen, name, NUL} padded to 4 bytes.
// Decoding is strict: a length that lies, a bad type or too deep nesting is a
// BlobError naming what was wrong, never a crash.

import { concatBytes as concat, utf8Decode, utf8Encode } from '../bytes.js'

export class BlobError extends Error {}

export const BLOBMSG = { ARRAY: 1, TABLE: 2, STRING: 3, INT64: 4, INT32: 5, INT16: 6, INT8: 7, DOUBLE: 8 } as const

const EXTENDED = 0x80000000
const MAX_LEN = 0xffffff
/** Nesting deeper than this is refused (libubox has no limit; JSON from ugate needs 4). */
export const MAX_DEPTH = 32

const pad4 = (n: number) => (n + 3) & ~3

export interface Attr {
  id: number
  extended: boolean
  /** The payload, without header or padding (a view into the input). */
  data: Uint8Array
}

/** The attributes packed in `buf`, which must be exactly a sequence of padded attrs. */
export function parseAttrs(buf: Uint8Array): Attr[] {
  const out: Attr[] = []
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let off = 0
  while (off < buf.length) {
    if (buf.length - off < 4) throw new BlobError(`attribute header cut short at offset ${off}`)
    const idLen = dv.getUint32(off)
    const len = idLen & MAX_LEN
    if (len < 4) throw new BlobError(`attribute length ${len} at offset ${off} is below its header`)
    if (off + len > buf.length)
      throw new BlobError(`attribute length ${len} at offset ${off} runs past the end (${buf.length})`)
    out.push({
      id: (idLen >>> 24) & 0x7f,
      extended: (idLen & EXTENDED) !== 0,
      data: buf.subarray(off + 4, off + len),
    })
    // The last attribute's padding may be cut by the container's own length.
    off = Math.min(off + pad4(len), buf.length)
  }
  return out
}

/** One attribute with its header and padding. */
export function encodeAttr(id: number, data: Uint8Array, extended = false): Uint8Array {
  const len = 4 + data.length
  if (len > MAX_LEN) throw new BlobError(`attribute of ${len} bytes exceeds the 24-bit length`)
  const out = new Uint8Array(pad4(len))
  new DataView(out.buffer).setUint32(0, ((extended ? EXTENDED : 0) | ((id & 0x7f) << 24) | len) >>> 0)
  out.set(data, 4)
  return out
}

/** A NUL-terminated string payload (blob STRING / blobmsg STRING). */
export function cString(s: string): Uint8Array {
  const b = utf8Encode(s)
  if (b.includes(0)) throw new BlobError(`string ${JSON.stringify(s)} contains NUL`)
  return concat([b, new Uint8Array(1)])
}

export function readCString(data: Uint8Array, what: string): string {
  const nul = data.indexOf(0)
  if (nul < 0) throw new BlobError(`${what}: string without NUL terminator`)
  const s = utf8Decode(data, 0, nul)
  if (s === null) throw new BlobError(`${what}: string is not UTF-8`)
  return s
}

export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, v >>> 0)
  return b
}

export function readU32(data: Uint8Array, what: string): number {
  if (data.length !== 4) throw new BlobError(`${what}: expected 4 bytes, got ${data.length}`)
  return new DataView(data.buffer, data.byteOffset, 4).getUint32(0)
}

// ---- blobmsg <-> JSON values ---------------------------------------------

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue }

/** One blobmsg field named `name`; integers become INT32 when they fit, else INT64, fractions DOUBLE. */
export function encodeField(name: string, v: JsonValue, depth = 0): Uint8Array {
  if (depth > MAX_DEPTH) throw new BlobError(`nesting deeper than ${MAX_DEPTH}`)
  const [type, payload] = fieldPayload(v, depth)
  const n = utf8Encode(name)
  if (n.length > 0xffff) throw new BlobError('blobmsg name longer than 65535 bytes')
  const hdr = new Uint8Array(pad4(2 + n.length + 1))
  hdr[0] = n.length >> 8
  hdr[1] = n.length & 0xff
  hdr.set(n, 2)
  return encodeAttr(type, concat([hdr, payload]), true)
}

function fieldPayload(v: JsonValue, depth: number): [number, Uint8Array] {
  if (v === null) return [BLOBMSG.STRING, cString('')]
  if (typeof v === 'boolean') return [BLOBMSG.INT8, new Uint8Array([v ? 1 : 0])]
  if (typeof v === 'string') return [BLOBMSG.STRING, cString(v)]
  if (typeof v === 'number') {
    const b = new Uint8Array(8)
    const dv = new DataView(b.buffer)
    if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) {
      dv.setInt32(0, v)
      return [BLOBMSG.INT32, b.subarray(0, 4)]
    }
    if (Number.isSafeInteger(v)) {
      dv.setBigInt64(0, BigInt(v))
      return [BLOBMSG.INT64, b]
    }
    dv.setFloat64(0, v)
    return [BLOBMSG.DOUBLE, b]
  }
  if (Array.isArray(v)) return [BLOBMSG.ARRAY, concat(v.map((x) => encodeField('', x, depth + 1)))]
  return [BLOBMSG.TABLE, encodeTable(v, depth + 1)]
}

/** The fields of a JSON object, as the payload of a TABLE (or of UBUS_ATTR_DATA). */
export function encodeTable(obj: { [k: string]: JsonValue }, depth = 0): Uint8Array {
  return concat(
    Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .map((k) => encodeField(k, obj[k], depth)),
  )
}

export interface Field {
  name: string
  type: number
  value: JsonValue
}

/** One blobmsg attribute → name, type and JSON value. */
function decodeField(a: Attr, depth = 0): Field {
  if (!a.extended) throw new BlobError(`blobmsg attribute (type ${a.id}) without the extended bit`)
  if (a.data.length < 2) throw new BlobError('blobmsg name header cut short')
  const nameLen = (a.data[0] << 8) | a.data[1]
  const hdrLen = pad4(2 + nameLen + 1)
  if (hdrLen > a.data.length)
    throw new BlobError(`blobmsg name length ${nameLen} runs past the attribute (${a.data.length})`)
  const name = readCString(a.data.subarray(2, 2 + nameLen + 1), 'blobmsg name')
  const d = a.data.subarray(hdrLen)
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength)
  const need = (n: number) => {
    if (d.length !== n)
      throw new BlobError(`field ${JSON.stringify(name)}: type ${a.id} needs ${n} bytes, got ${d.length}`)
  }
  switch (a.id) {
    case BLOBMSG.ARRAY:
    case BLOBMSG.TABLE: {
      if (depth >= MAX_DEPTH) throw new BlobError(`nesting deeper than ${MAX_DEPTH}`)
      const children = parseAttrs(d).map((c) => decodeField(c, depth + 1))
      if (a.id === BLOBMSG.ARRAY) return { name, type: a.id, value: children.map((c) => c.value) }
      return { name, type: a.id, value: toObject(children) }
    }
    case BLOBMSG.STRING:
      return { name, type: a.id, value: readCString(d, `field ${JSON.stringify(name)}`) }
    case BLOBMSG.INT64:
      need(8)
      return { name, type: a.id, value: Number(dv.getBigInt64(0)) }
    case BLOBMSG.INT32:
      need(4)
      return { name, type: a.id, value: dv.getInt32(0) }
    case BLOBMSG.INT16:
      need(2)
      return { name, type: a.id, value: dv.getInt16(0) }
    case BLOBMSG.INT8:
      need(1)
      return { name, type: a.id, value: d[0] !== 0 }
    case BLOBMSG.DOUBLE:
      need(8)
      return { name, type: a.id, value: dv.getFloat64(0) }
    default:
      throw new BlobError(`field ${JSON.stringify(name)}: unknown blobmsg type ${a.id}`)
  }
}

function toObject(fields: Field[]): { [k: string]: JsonValue } {
  const o: { [k: string]: JsonValue } = {}
  for (const f of fields) o[f.name] = f.value
  return o
}

/** A TABLE payload (or UBUS_ATTR_DATA) → JSON object. */
export function decodeTable(buf: Uint8Array): { [k: string]: JsonValue } {
  return toObject(decodeFields(buf))
}

/** A TABLE payload → its fields, types kept (signatures carry types as values). */
export function decodeFields(buf: Uint8Array): Field[] {
  return parseAttrs(buf).map((a) => decodeField(a, 1))
}
