// QUIC sniffer: SNI (host) and ALPN from the ClientHello in a client's
// Initial packets (QUIC v1, RFC 9000/9001; v2, RFC 9369).
//
// Initial packets are encrypted with keys anyone can derive from the
// packet's Destination Connection ID; opening them is injected (`open`): the
// gateway passes the native one (native/quic.c, mbedTLS), tests may pass one
// built on node:crypto. This file reads what comes out: the frames of each
// Initial packet (RFC 9000 19; in an Initial only PADDING, PING, ACK, CRYPTO
// and CONNECTION_CLOSE are allowed, 12.4), the CRYPTO stream reassembled by
// offset across packets and datagrams (a ClientHello with a post-quantum key
// share is ~1 700+ bytes: two Initial packets), and the ClientHello at its
// start, parsed by the TLS sniffer. Nothing after the ClientHello is read.
//
// Like every parser here it keeps no state: it gets every datagram the
// client sent so far, in order, and is called again with one more.

import { hex, hexByte } from '../bytes.js'
import { NEED_MORE, notMine, type Ok } from '../parse-result.js'
import { sniffClientHelloMessage, TLS_MAX_HELLO } from './tls.js'
import type { Sniffed, SniffResult } from './types.js'

/** One client Initial packet, opened. */
export interface QuicInitial {
  /** 0x00000001 (v1) or 0x6b3343cf (v2). */
  version: number
  /** Destination Connection ID: the keys come from it. */
  dcid: Uint8Array
  /** Packet number. */
  pn: number
  /** The decrypted payload: frames. */
  frames: Uint8Array
}

/**
 * Why a datagram holds no client Initial to open: its first packet is not a
 * QUIC long header, is another packet type, has another version, has a field
 * out of range, is cut short, or does not authenticate.
 */
export type QuicOpenError = 'not-quic' | 'not-initial' | 'version' | 'malformed' | 'truncated' | 'bad-tag'

/** The client Initial packets of one datagram (coalesced packets of other types skipped), or why none. */
export type QuicOpened = { packets: QuicInitial[] } | { error: QuicOpenError; message: string }

/** Opens the client Initial packets of one UDP datagram (native: quicOpenInitials). */
export type QuicOpen = (datagram: Uint8Array) => QuicOpened

export interface QuicSniffOptions {
  /** Largest ClientHello body accepted, in bytes (default TLS_MAX_HELLO). */
  maxHello?: number
  /** Datagrams to wait for before an incomplete ClientHello is invalid (default QUIC_MAX_DATAGRAMS). */
  maxDatagrams?: number
}

/** Default limit on the datagrams a ClientHello may take (16 KiB needs about 14 Initial packets). */
const QUIC_MAX_DATAGRAMS = 16

const FRAME_PADDING = 0x00
const FRAME_PING = 0x01
const FRAME_ACK = 0x02
const FRAME_ACK_ECN = 0x03
const FRAME_CRYPTO = 0x06
const FRAME_CONNECTION_CLOSE = 0x1c

function invalid(error: string): SniffResult {
  return { status: 'invalid', proto: 'quic', error }
}

const NEED_MORE_QUIC: SniffResult = { status: 'need-more', proto: 'quic' }

/** A piece of the CRYPTO stream. */
interface Piece {
  offset: number
  data: Uint8Array
}

/**
 * Sniff the ClientHello carried by the client's first datagrams (all of them
 * so far, in arrival order). ok: proto 'quic', host = SNI (absent when the
 * client sent none), alpn. not-mine: the first datagram is no client Initial
 * of a version we read (not QUIC, another packet type, another version).
 * Later datagrams that hold no Initial of the same connection (0-RTT, a
 * stray or forged packet) are passed over, as a QUIC server would drop them.
 */
export function sniffQuic(datagrams: readonly Uint8Array[], open: QuicOpen, opts: QuicSniffOptions = {}): SniffResult {
  const maxHello = opts.maxHello ?? TLS_MAX_HELLO
  const maxDatagrams = opts.maxDatagrams ?? QUIC_MAX_DATAGRAMS
  if (datagrams.length === 0) return NEED_MORE
  const pieces: Piece[] = []
  let first: QuicInitial | undefined
  for (let d = 0; d < datagrams.length; d++) {
    const opened = open(datagrams[d]!)
    if ('error' in opened) {
      if (d > 0) continue
      if (opened.error === 'not-quic' || opened.error === 'not-initial' || opened.error === 'version')
        return notMine(opened.message)
      return invalid(opened.message)
    }
    for (const p of opened.packets) {
      if (first === undefined) first = p
      else if (p.version !== first.version || !sameBytes(p.dcid, first.dcid)) continue // another connection's
      const e = readFrames(p.frames, pieces)
      if (e !== null) return invalid(`quic: packet ${p.pn} in datagram ${d}: ${e}`)
    }
  }
  const stream = reassemble(pieces, maxHello + 4)
  if (typeof stream === 'string') return invalid(stream)
  const r = sniffClientHelloMessage(stream, { maxHello })
  if (r.status === 'ok') {
    const out: Ok<Sniffed> = { status: 'ok', proto: 'quic' }
    if (r.host !== undefined) out.host = r.host
    if (r.alpn !== undefined) out.alpn = r.alpn
    return out
  }
  if (r.status === 'need-more') {
    if (datagrams.length >= maxDatagrams)
      return invalid(`quic: ClientHello incomplete after ${datagrams.length} datagrams (limit ${maxDatagrams})`)
    return NEED_MORE_QUIC
  }
  return r.status === 'invalid' ? invalid(r.error) : invalid(`quic: ${r.error}`)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** RFC 9000 16: a variable-length integer (above 2^53 it loses precision; every use bounds it far lower). */
class Cursor {
  pos = 0
  constructor(readonly buf: Uint8Array) {}

  left(): number {
    return this.buf.length - this.pos
  }

  /** The next varint, or -1 when it runs past the end. */
  varint(): number {
    if (this.pos >= this.buf.length) return -1
    const b = this.buf[this.pos]!
    const n = 1 << (b >> 6)
    if (this.left() < n) return -1
    let v = b & 0x3f
    for (let i = 1; i < n; i++) v = v * 256 + this.buf[this.pos + i]!
    this.pos += n
    return v
  }
}

/** The frames of one Initial packet: CRYPTO data into pieces; an error text or null. */
function readFrames(frames: Uint8Array, pieces: Piece[]): string | null {
  if (frames.length === 0) return 'empty payload (no frame)'
  const c = new Cursor(frames)
  while (c.left() > 0) {
    const at = c.pos
    const type = c.varint()
    const cut = `frame at offset ${at} truncated`
    // RFC 9000 12.4: a frame type takes the fewest bytes its varint can.
    if (type >= 0 && type < 64 && c.pos - at > 1)
      return `frame type ${hexByte(type)} at offset ${at} is not minimally encoded`
    switch (type) {
      case FRAME_PADDING:
      case FRAME_PING:
        break
      case FRAME_ACK:
      case FRAME_ACK_ECN: {
        // Largest Acknowledged, ACK Delay, ACK Range Count, First ACK Range.
        const fields = [c.varint(), c.varint(), c.varint(), c.varint()]
        if (fields.includes(-1)) return cut
        const ranges = fields[2]!
        // Each range is two varints of at least one byte: a count the frame cannot hold is a lie.
        if (ranges * 2 > c.left()) return `ACK range count ${ranges} exceeds the ${c.left()} bytes left`
        for (let i = 0; i < ranges * 2; i++) if (c.varint() < 0) return cut
        if (type === FRAME_ACK_ECN && (c.varint() < 0 || c.varint() < 0 || c.varint() < 0)) return cut
        break
      }
      case FRAME_CRYPTO: {
        const offset = c.varint()
        const len = c.varint()
        if (offset < 0 || len < 0) return cut
        if (len > c.left()) return `CRYPTO length ${len} exceeds the ${c.left()} bytes left`
        pieces.push({ offset, data: c.buf.subarray(c.pos, c.pos + len) })
        c.pos += len
        break
      }
      case FRAME_CONNECTION_CLOSE: {
        const code = c.varint()
        const frameType = c.varint()
        const reason = c.varint()
        if (code < 0 || frameType < 0 || reason < 0) return cut
        if (reason > c.left()) return `CONNECTION_CLOSE reason length ${reason} exceeds the ${c.left()} bytes left`
        c.pos += reason
        break
      }
      case -1:
        return cut
      default:
        return `frame type ${type < 256 ? hexByte(type) : hex(type, 8)} is not allowed in an Initial packet`
    }
  }
  return null
}

/**
 * The CRYPTO stream from offset 0 as far as it is contiguous. Pieces may come
 * in any order, repeat and overlap (retransmissions), but must agree where
 * they overlap; none may reach past limit.
 */
function reassemble(pieces: readonly Piece[], limit: number): Uint8Array | string {
  let size = 0
  for (const p of pieces) {
    const end = p.offset + p.data.length
    if (end > limit) return `quic: CRYPTO data up to offset ${end} exceeds the ClientHello limit (${limit} bytes)`
    if (end > size) size = end
  }
  const buf = new Uint8Array(size)
  const have = new Uint8Array(size)
  for (const p of pieces) {
    for (let i = 0; i < p.data.length; i++) {
      const o = p.offset + i
      if (have[o] && buf[o] !== p.data[i]) return `quic: CRYPTO data at offset ${o} differs from an earlier copy`
      buf[o] = p.data[i]!
      have[o] = 1
    }
  }
  let n = 0
  while (n < size && have[n]) n++
  return buf.subarray(0, n)
}
