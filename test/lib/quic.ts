// QUIC client Initial opening on node:crypto (RFC 9001 5, RFC 9369 3.3): the
// QuicOpen the unit tests inject into sniffQuic, written apart from
// native/quic.c so the two can be checked against each other and against
// the RFCs' test vectors.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto'
import type { QuicInitial, QuicOpen, QuicOpened } from '../../src/core/sniff/quic.js'

export const QUIC_V1 = 0x00000001
export const QUIC_V2 = 0x6b3343cf

const VERSIONS = new Map([
  [QUIC_V1, { salt: '38762cf7f55934b34d179ae6a4c80cadccbb7f0a', initial: 0, retry: 3, prefix: 'quic' }],
  [QUIC_V2, { salt: '0dede3def700a6db819381be6e269dcbf9bd2ed9', initial: 1, retry: 0, prefix: 'quicv2' }],
])

function expandLabel(secret: Buffer, label: string, len: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`)
  const info = Buffer.concat([Buffer.from([len >> 8, len & 0xff, full.length]), full, Buffer.from([0])])
  // One HKDF-Expand block is enough: every output here is at most 32 bytes.
  return createHmac('sha256', secret)
    .update(Buffer.concat([info, Buffer.from([1])]))
    .digest()
    .subarray(0, len)
}

export interface InitialKeys {
  key: Buffer
  iv: Buffer
  hp: Buffer
}

/** The client's Initial keys for a DCID. */
export function clientInitialKeys(version: number, dcid: Uint8Array): InitialKeys {
  const v = VERSIONS.get(version)
  if (!v) throw new Error(`version ${version.toString(16)} unknown`)
  const initial = createHmac('sha256', Buffer.from(v.salt, 'hex')).update(dcid).digest()
  const client = expandLabel(initial, 'client in', 32)
  return {
    key: expandLabel(client, `${v.prefix} key`, 16),
    iv: expandLabel(client, `${v.prefix} iv`, 12),
    hp: expandLabel(client, `${v.prefix} hp`, 16),
  }
}

class Short extends Error {}

function varint(b: Uint8Array, pos: number): [number, number] {
  if (pos >= b.length) throw new Short()
  const n = 1 << (b[pos]! >> 6)
  if (pos + n > b.length) throw new Short()
  let v = b[pos]! & 0x3f
  for (let i = 1; i < n; i++) v = v * 256 + b[pos + i]!
  return [v, pos + n]
}

type One = { ok: QuicInitial; len: number } | { err: Exclude<QuicOpened, { packets: unknown }>; len?: number }

function fail(error: Exclude<QuicOpened, { packets: unknown }>['error'], at: number, len?: number): One {
  const e = { err: { error, message: `quic: ${error} (packet at offset ${at})` } }
  return len === undefined ? e : { ...e, len }
}

function openOne(d: Uint8Array, at: number): One {
  const b = d.subarray(at)
  if (b.length < 7 || !(b[0]! & 0x80)) return fail('not-quic', at)
  const version = ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0
  const v = VERSIONS.get(version)
  if (!v) return fail('version', at)
  if (!(b[0]! & 0x40)) return fail('not-quic', at)
  try {
    let p = 5
    const dl = b[p++]!
    if (dl > 20) return fail('malformed', at)
    if (p + dl + 1 > b.length) throw new Short()
    const dcid = b.slice(p, p + dl)
    p += dl
    const sl = b[p++]!
    if (sl > 20) return fail('malformed', at)
    if (p + sl > b.length) throw new Short()
    p += sl
    const type = (b[0]! >> 4) & 3
    let n: number
    if (type !== v.initial) {
      if (type === v.retry) return fail('not-initial', at, b.length)
      ;[n, p] = varint(b, p)
      if (p + n > b.length) throw new Short()
      return fail('not-initial', at, p + n)
    }
    ;[n, p] = varint(b, p) // token
    if (p + n > b.length) throw new Short()
    p += n
    ;[n, p] = varint(b, p) // length
    if (p + n > b.length) throw new Short()
    const end = p + n
    if (n < 20) throw new Short()
    const k = clientInitialKeys(version, dcid)
    const ecb = createCipheriv('aes-128-ecb', k.hp, null)
    const mask = ecb.update(b.subarray(p + 4, p + 20))
    const header = Buffer.from(b.subarray(0, p + 4))
    header[0] ^= mask[0]! & 0x0f
    const pnLen = (header[0]! & 3) + 1
    let pn = 0
    for (let i = 0; i < pnLen; i++) {
      header[p + i] ^= mask[1 + i]!
      pn = pn * 256 + header[p + i]!
    }
    const aad = header.subarray(0, p + pnLen)
    const nonce = Buffer.from(k.iv)
    for (let i = 0; i < 6; i++) nonce[11 - i] ^= Math.floor(pn / 2 ** (8 * i)) & 0xff
    const gcm = createDecipheriv('aes-128-gcm', k.key, nonce)
    gcm.setAAD(aad)
    gcm.setAuthTag(b.subarray(end - 16, end))
    let frames: Buffer
    try {
      frames = Buffer.concat([gcm.update(b.subarray(p + pnLen, end - 16)), gcm.final()])
    } catch {
      return fail('bad-tag', at)
    }
    if (header[0]! & 0x0c) return fail('malformed', at)
    return { ok: { version, dcid, pn, frames: new Uint8Array(frames) }, len: end }
  } catch (e) {
    if (e instanceof Short) return fail('truncated', at)
    throw e
  }
}

/** QuicOpen on node:crypto: walks coalesced packets as native/mod_quic.c does. */
export const nodeQuicOpen: QuicOpen = (d) => {
  const packets: QuicInitial[] = []
  let pos = 0
  do {
    const r = openOne(d, pos)
    if ('ok' in r) {
      packets.push(r.ok)
      pos += r.len
      continue
    }
    if (packets.length > 0 && r.err.error === 'not-initial' && r.len !== undefined) {
      pos += r.len
      continue
    }
    if (packets.length > 0 && r.err.error === 'not-quic') break
    return r.err
  } while (pos < d.length)
  return { packets }
}

/**
 * What `ugate sniff-quic --packets` prints before its result, computed here:
 * one line per opened packet (frames in hex), or the error kind of a
 * datagram that has none (the native message words it its own way).
 */
export function sniffQuicPacketLines(datagrams: Uint8Array[]): unknown[] {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
  return datagrams.flatMap((d, i): unknown[] => {
    const o = nodeQuicOpen(d)
    if ('error' in o) return [{ datagram: i, error: o.error }]
    return o.packets.map((p) => ({
      datagram: i,
      version: p.version,
      dcid: hex(p.dcid),
      pn: p.pn,
      frames: hex(p.frames),
    }))
  })
}
