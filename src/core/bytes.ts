// Byte helpers shared by the protocol parsers (socks.ts, http-proxy.ts,
// the sniffers); their result type is in parse-result.ts.
// Runtime-free: no TextEncoder/TextDecoder (not every QuickJS build has
// them), so Latin-1 and UTF-8 are converted by hand here. IP literals and
// their network-order bytes are in ip.ts.

/** hex(0x303, 4) → "0x0303": how protocol numbers appear in error messages and nft rules. */
export function hex(n: number, digits: number): string {
  return '0x' + n.toString(16).padStart(digits, '0')
}

/** 7 → "0x07" */
export function hexByte(n: number): string {
  return hex(n & 0xff, 2)
}

/** Big-endian 16-bit value at `off` (the caller has checked the length). */
export function readU16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

/** One char per byte: every byte value round-trips through latin1Encode. */
export function latin1Decode(buf: Uint8Array, start = 0, end = buf.length): string {
  let s = ''
  const STEP = 4096 // keep fromCharCode's argument count small
  for (let i = start; i < end; i += STEP) {
    s += String.fromCharCode.apply(null, Array.from(buf.subarray(i, Math.min(end, i + STEP))))
  }
  return s
}

/** Inverse of latin1Decode; a char above U+00FF is a caller bug (RangeError). */
export function latin1Encode(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c > 0xff) throw new RangeError(`latin1Encode: char U+${c.toString(16).padStart(4, '0')} is not Latin-1`)
    out[i] = c
  }
  return out
}

/** UTF-8 bytes of a string; a lone surrogate becomes U+FFFD. */
export function utf8Encode(s: string): Uint8Array {
  const out: number[] = []
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        i++
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd
    if (c < 0x80) out.push(c)
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f))
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
  }
  return Uint8Array.from(out)
}

/**
 * Strict UTF-8 decoding of buf[start, end): null on a truncated sequence,
 * an overlong form, a surrogate or a code point above U+10FFFF.
 */
export function utf8Decode(buf: Uint8Array, start = 0, end = buf.length): string | null {
  let s = ''
  let i = start
  while (i < end) {
    const b = buf[i]!
    let cp: number
    let n: number
    let min: number
    if (b < 0x80) {
      s += String.fromCharCode(b)
      i++
      continue
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f
      n = 1
      min = 0x80
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f
      n = 2
      min = 0x800
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07
      n = 3
      min = 0x10000
    } else {
      return null
    }
    if (i + n >= end) return null // truncated sequence
    for (let k = 1; k <= n; k++) {
      const c = buf[i + k]!
      if ((c & 0xc0) !== 0x80) return null
      cp = (cp << 6) | (c & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null
    s += String.fromCodePoint(cp)
    i += n + 1
  }
  return s
}

/**
 * Bytes [start, end) read through `get` as log-safe text: printable ASCII as
 * is, every other byte as \xNN. Plain, `\` is \x5c too, so the text is
 * lossless; quoted (inside an error message's double quotes), `"` and `\`
 * are \" and \\.
 */
export function escapeBytes(get: (i: number) => number, start: number, end: number, quoted = false): string {
  let s = ''
  for (let i = start; i < end; i++) {
    const b = get(i) & 0xff
    if (quoted && (b === 0x22 || b === 0x5c)) s += '\\' + String.fromCharCode(b)
    else if (b >= 0x20 && b < 0x7f && b !== 0x5c) s += String.fromCharCode(b)
    else s += '\\x' + b.toString(16).padStart(2, '0')
  }
  return s
}

function quote(get: (i: number) => number, start: number, end: number, max: number): string {
  const stop = Math.min(end, start + max)
  return `"${escapeBytes(get, start, stop, true)}${end > stop ? '...' : ''}"`
}

/** Quote raw bytes for an error message, cut at `max` bytes. */
export function showBytes(buf: Uint8Array, start = 0, end = buf.length, max = 40): string {
  return quote((i) => buf[i]!, start, end, max)
}

/** Quote a string of byte-valued chars (text sniffed from the wire) the same way. */
export function showText(s: string, max = 64): string {
  return quote((i) => s.charCodeAt(i), 0, s.length, max)
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** RFC 4648 base64 with padding. */
export function base64Encode(buf: Uint8Array): string {
  let s = ''
  for (let i = 0; i < buf.length; i += 3) {
    const a = buf[i]!
    const b = i + 1 < buf.length ? buf[i + 1]! : 0
    const c = i + 2 < buf.length ? buf[i + 2]! : 0
    const n = (a << 16) | (b << 8) | c
    s += B64[n >> 18]! + B64[(n >> 12) & 63]!
    s += i + 1 < buf.length ? B64[(n >> 6) & 63]! : '='
    s += i + 2 < buf.length ? B64[n & 63]! : '='
  }
  return s
}

/**
 * Strict RFC 4648 base64: the standard alphabet only, padded to a multiple
 * of 4, '=' only at the end, and zero bits in the unused tail (so every
 * byte string has exactly one accepted spelling). null otherwise.
 */
export function base64Decode(s: string): Uint8Array | null {
  if (s.length % 4 !== 0) return null
  let pad = 0
  if (s.endsWith('==')) pad = 2
  else if (s.endsWith('=')) pad = 1
  const out = new Uint8Array((s.length / 4) * 3 - pad)
  let o = 0
  for (let i = 0; i < s.length; i += 4) {
    const last = i + 4 === s.length
    let n = 0
    for (let k = 0; k < 4; k++) {
      const ch = s[i + k]!
      let v: number
      if (ch === '=' && last && k >= 4 - pad) v = 0
      else {
        v = B64.indexOf(ch)
        if (v < 0 || ch === '=') return null
      }
      n = (n << 6) | v
    }
    if (last && pad === 2 && (n & 0xffff) !== 0) return null
    if (last && pad === 1 && (n & 0xff) !== 0) return null
    out[o++] = n >> 16
    if (o < out.length) out[o++] = (n >> 8) & 0xff
    if (o < out.length) out[o++] = n & 0xff
  }
  return out
}
