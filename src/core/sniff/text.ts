// Small byte/text helpers for the sniffers: no TextDecoder, no runtime APIs.

import { hostNameProblem } from '../address.js'

/** RFC 9110 tchar: the characters of a method or header-name token. */
export function isTchar(b: number): boolean {
  if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) return true
  switch (b) {
    case 0x21: // !
    case 0x23: // #
    case 0x24: // $
    case 0x25: // %
    case 0x26: // &
    case 0x27: // '
    case 0x2a: // *
    case 0x2b: // +
    case 0x2d: // -
    case 0x2e: // .
    case 0x5e: // ^
    case 0x5f: // _
    case 0x60: // `
    case 0x7c: // |
    case 0x7e: // ~
      return true
    default:
      return false
  }
}

/** Bytes [start, end) as a string, one char per byte (ASCII; callers check the range). */
export function byteString(buf: Uint8Array, start: number, end: number): string {
  let s = ''
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!)
  return s
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c
}

/** Case-insensitive ASCII compare of buf[start..] with a lower-case literal. */
export function bytesEqualLower(buf: Uint8Array, start: number, end: number, lit: string): boolean {
  if (end - start !== lit.length) return false
  for (let i = 0; i < lit.length; i++) if (lower(buf[start + i]!) !== lit.charCodeAt(i)) return false
  return true
}

export type NameCheck = { name: string } | { why: string }

/**
 * A host name as it may appear in SNI or a Host header (hostNameProblem,
 * lenient), normalised: one trailing dot stripped, lower-cased. IPv4
 * literals pass too (digits and dots).
 */
export function checkDnsName(s: string): NameCheck {
  const t = s.endsWith('.') ? s.slice(0, -1) : s
  const why = hostNameProblem(t, true)
  return why === null ? { name: t.toLowerCase() } : { why }
}
