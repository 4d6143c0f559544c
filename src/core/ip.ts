// IP addresses: the one parser (text → 32-bit words), the one formatter
// (words → RFC 5952 text), CIDR prefixes, and the 4/16 network-order bytes
// of the wire protocols. Runtime-free and allocation-free on the query path:
// parseIpInto() writes into a caller-owned Int32Array(4) and returns the
// family, so route() parses a connection's addresses without creating objects.
//
// Layout: an IPv4 address is word 0 (words 1-3 are left alone); an IPv6
// address is words 0-3, most significant first. Words are signed int32 (what
// bitwise operators produce); compare them with ^ and masks, never with <.

/** 4 = IPv4, 6 = IPv6, 0 = not an address. */
export type Family = 0 | 4 | 6

/** A parsed CIDR: network address (host bits cleared), prefix length, family. */
export interface Cidr {
  family: 4 | 6
  words: number[] // 4 int32 words; IPv4 uses word 0 (plain array: one object per CIDR, not three)
  len: number // 0-32 or 0-128
}

/** Words of an address: the Int32Array scratch of a query, or a Cidr's array. */
export type Words = ArrayLike<number>

const scratch16 = new Uint16Array(8) // the 8 groups while parsing IPv6
const cidrScratch = new Int32Array(4)

/** Mask with the top `bits` (0-32) bits set. */
function maskBits(bits: number): number {
  return bits >= 32 ? -1 : bits <= 0 ? 0 : ~(-1 >>> bits)
}

/**
 * Dotted quad in s[start, end): the address as a uint32 in a double, or -1.
 * Strict: four decimal parts 0-255, no leading zeros (some parsers read them
 * as octal), no signs or spaces.
 */
function parseV4(s: string, start: number, end: number): number {
  let value = 0
  let parts = 0
  let i = start
  while (parts < 4) {
    const first = i
    let n = 0
    while (i < end) {
      const c = s.charCodeAt(i)
      if (c < 48 || c > 57) break
      n = n * 10 + (c - 48)
      i++
      if (i - first > 3) return -1
    }
    const digits = i - first
    if (digits === 0 || n > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return -1
    value = value * 256 + n
    parts++
    if (parts < 4) {
      if (i >= end || s.charCodeAt(i) !== 46 /* . */) return -1
      i++
    }
  }
  return i === end ? value : -1
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** IPv6 text in s[start, end) into out[0..3]; true when valid. No zone ids. */
function parseV6(s: string, start: number, end: number, out: Int32Array): boolean {
  const g = scratch16
  let count = 0 // groups parsed
  let gap = -1 // group index where "::" stands
  let i = start
  if (end - start >= 2 && s.charCodeAt(i) === 58 && s.charCodeAt(i + 1) === 58) {
    gap = 0
    i += 2
  }
  while (i < end) {
    const first = i
    let n = 0
    while (i < end && i - first < 5) {
      const h = hexValue(s.charCodeAt(i))
      if (h < 0) break
      n = n * 16 + h
      i++
    }
    if (i < end && s.charCodeAt(i) === 46 /* . */) {
      // a trailing dotted quad takes the last two groups
      if (count > 6) return false
      const v4 = parseV4(s, first, end)
      if (v4 < 0) return false
      g[count++] = Math.floor(v4 / 65536)
      g[count++] = v4 % 65536
      i = end
      break
    }
    const digits = i - first
    if (digits === 0 || digits > 4 || count >= 8) return false
    g[count++] = n
    if (i === end) break
    if (s.charCodeAt(i) !== 58 /* : */) return false
    i++
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false
      gap = count
      i++
    } else if (i === end) {
      return false // a single trailing ':'
    }
  }
  if (gap < 0) {
    if (count !== 8) return false
  } else {
    if (count > 7) return false
    const tail = count - gap
    for (let k = 0; k < tail; k++) g[7 - k] = g[count - 1 - k]!
    for (let k = gap; k < 8 - tail; k++) g[k] = 0
  }
  for (let w = 0; w < 4; w++) out[w] = (g[2 * w]! << 16) | g[2 * w + 1]!
  return true
}

/**
 * Parse an IP address into out (Int32Array of length >= 4), allocation-free.
 * With `query` set (addresses of live connections): an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4 peers)
 * becomes IPv4, and a zone id ("fe80::1%br-lan") is ignored.
 */
export function parseIpInto(s: string, out: Int32Array, query = false): Family {
  let end = s.length
  if (end === 0 || end > 64) return 0
  if (s.indexOf(':') < 0) {
    const v = parseV4(s, 0, end)
    if (v < 0) return 0
    out[0] = v | 0
    return 4
  }
  if (query) {
    const pct = s.indexOf('%')
    if (pct > 0) end = pct
  }
  if (!parseV6(s, 0, end, out)) return 0
  if (query && out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!
    return 4
  }
  return 6
}

/**
 * Parse "ADDR/LEN" or a plain address (a /32 or /128); null when invalid.
 * Host bits are cleared. With `unmap` (what routing wants, since queries
 * arrive unmapped too), a prefix inside ::ffff:0:0/96 becomes IPv4.
 */
export function parseCidr(text: string, unmap = true): Cidr | null {
  if (typeof text !== 'string') return null
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const family = parseIpInto(addr, cidrScratch)
  if (family === 0) return null
  const words = [cidrScratch[0]!, cidrScratch[1]!, cidrScratch[2]!, cidrScratch[3]!]
  const max = family === 4 ? 32 : 128
  let len = max
  if (slash >= 0) {
    const lenText = text.slice(slash + 1)
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText)) return null
    len = Number(lenText)
    if (len > max) return null
  }
  // An IPv4-mapped IPv6 prefix inside ::ffff:0:0/96 is an IPv4 prefix.
  if (unmap && family === 6 && len >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
    return { family: 4, words: [words[3]! & maskBits(len - 96), 0, 0, 0], len: len - 96 }
  }
  clearHostBits(words, family, len)
  return { family, words, len }
}

function clearHostBits(words: number[], family: 4 | 6, len: number): void {
  const n = family === 4 ? 1 : 4
  for (let w = 0; w < n; w++) words[w] = words[w]! & maskBits(len - 32 * w)
}

/** Whether the first `len` bits of a and b are equal (len 0-128). */
export function samePrefix(a: Words, b: Words, len: number): boolean {
  for (let w = 0; len > 0; w++, len -= 32) {
    if (((a[w]! ^ b[w]!) & maskBits(len)) !== 0) return false
  }
  return true
}

/** Bit `i` (0 = most significant of word 0) of an address. */
export function bitAt(words: Words, i: number): number {
  return (words[i >>> 5]! >>> (31 - (i & 31))) & 1
}

/** Length of the common prefix of a and b, at most `max` bits. */
export function commonPrefixLength(a: Words, b: Words, max: number): number {
  for (let w = 0; w * 32 < max; w++) {
    const x = a[w]! ^ b[w]!
    if (x !== 0) return Math.min(max, w * 32 + Math.clz32(x))
  }
  return max
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as "::"). */
export function formatIp(family: 4 | 6, words: Words): string {
  if (family === 4) {
    const v = words[0]!
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
  }
  const g: number[] = []
  for (let w = 0; w < 4; w++) g.push((words[w]! >>> 16) & 0xffff, words[w]! & 0xffff)
  let bestStart = -1
  let bestLen = 1 // RFC 5952: a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':')
  if (bestStart < 0) return hex(g)
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`
}

/** "10.0.0.0/8"; a full-length prefix is written as the bare address. */
export function formatCidr(c: Cidr): string {
  const max = c.family === 4 ? 32 : 128
  const ip = formatIp(c.family, c.words)
  return c.len === max ? ip : `${ip}/${c.len}`
}

/**
 * Parsed query addresses by their text, in front of parseIpInto: on QuickJS
 * parsing costs 2-7 µs (a JS loop per character), a cache hit ~0.1 µs, and
 * the addresses a router sees repeat (its LAN clients, popular
 * destinations). IPv4 entries are plain numbers; an IPv6 entry is allocated
 * once, on its first sight. Cleared when full, so it stays bounded.
 */
export class AddressCache {
  private readonly map = new Map<string, number | Int32Array>()
  constructor(private readonly limit = 1024) {}

  /** parseIpInto(s, out, true), remembered. */
  parse(s: string, out: Int32Array): Family {
    const hit = this.map.get(s)
    if (hit !== undefined) {
      if (typeof hit === 'number') {
        out[0] = hit
        return 4
      }
      out[0] = hit[0]!
      out[1] = hit[1]!
      out[2] = hit[2]!
      out[3] = hit[3]!
      return 6
    }
    const family = parseIpInto(s, out, true)
    if (family === 0) return 0 // garbage is not worth remembering
    if (this.map.size >= this.limit) this.map.clear()
    this.map.set(s, family === 4 ? out[0]! : Int32Array.of(out[0]!, out[1]!, out[2]!, out[3]!))
    return family
  }
}

const checkScratch = new Int32Array(4)

/** Dotted quad, strict (no leading zeros, which some parsers read as octal). */
export function isIPv4(s: string): boolean {
  return parseIpInto(s, checkScratch) === 4
}

/** IPv6 text with "::" and a trailing dotted quad; no brackets, no zone id. */
export function isIPv6(s: string): boolean {
  return parseIpInto(s, checkScratch) === 6
}

export function isIpLiteral(s: string): boolean {
  return parseIpInto(s, checkScratch) !== 0
}

/** One spelling per IP address ("::0001" and "::1" give the same key); other text lower-cased. */
export function ipKey(host: string): string {
  const family = parseIpInto(host, checkScratch)
  return family === 0 ? host.toLowerCase() : formatIp(family, checkScratch)
}

/** "0.0.0.0" or "::" in any spelling: a listener on every address of its family. */
export function isWildcard(host: string): boolean {
  const k = ipKey(host)
  return k === '0.0.0.0' || k === '::'
}

/** Dotted quad from the 4 bytes at `off`. */
export function formatIPv4(buf: Uint8Array, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`
}

/** RFC 5952 text of the 16 bytes at `off` (formatIp), IPv4-mapped addresses as ::ffff:a.b.c.d. */
export function formatIPv6(buf: Uint8Array, off = 0): string {
  const w = checkScratch
  for (let i = 0; i < 4; i++) {
    const o = off + 4 * i
    w[i] = (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!
  }
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return '::ffff:' + formatIPv4(buf, off + 12)
  return formatIp(6, w)
}

/** "1.2.3.4" → 4 bytes; null unless a strict dotted quad. */
export function ipv4ToBytes(s: string): Uint8Array | null {
  return parseIpInto(s, checkScratch) === 4 ? wordBytes(1) : null
}

/** IPv6 text (isIPv6) → 16 bytes, or null. */
export function ipv6ToBytes(s: string): Uint8Array | null {
  return parseIpInto(s, checkScratch) === 6 ? wordBytes(4) : null
}

function wordBytes(words: number): Uint8Array {
  const out = new Uint8Array(4 * words)
  for (let i = 0; i < words; i++) {
    const v = checkScratch[i]!
    out[4 * i] = v >>> 24
    out[4 * i + 1] = (v >>> 16) & 255
    out[4 * i + 2] = (v >>> 8) & 255
    out[4 * i + 3] = v & 255
  }
  return out
}
