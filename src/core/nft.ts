// The nftables ruleset for transparent TCP capture (REDIRECT), as text for
// `nft -f -`. Everything lives in ugate's own table, `table inet ugate`,
// which fw4 never flushes (it flushes only `table inet fw4`), and every set
// and chain is named ugate_*, so stopping is one `delete table`.
//
// The text is one nft transaction: it first creates the table if missing and
// deletes it, then defines it afresh. Loading it replaces whatever an earlier
// run (or a crashed one) left, atomically, and loading it twice gives the
// same result. Every user-supplied value is parsed and re-formatted from the
// parsed form (addresses, ports, MACs) or checked against a strict pattern
// (interface names) before it reaches the text: nothing is pasted in as is.
//
// Chains (see docs/routing.md for the reasoning):
//   ugate_prerouting  nat, hook prerouting, priority dstnat: LAN traffic
//   ugate_output      nat, hook output, priority -100: the router's own
//                     traffic (only with routerSelf)
//   ugate_tproxy      filter, hook prerouting, priority mangle: UDP (all
//                     ports but 53, which the DNS capture owns) TPROXYed to
//                     the tproxy listener with the tproxy mark (only with
//                     udp); with tcpTproxy also TCP to the captured ports,
//                     instead of the nat chains' REDIRECT
//   ugate_tproxy_out  route, hook output, priority mangle: the router's own
//                     UDP (and TCP with tcpTproxy) gets the tproxy mark, so
//                     policy routing loops it through lo into ugate_tproxy
//                     (routerSelf)
// The tproxy mark needs policy routing (`ip rule fwmark M lookup T`, `ip
// route add local default dev lo table T`): policyRoutingScript() below.
// Rule order: not a LAN interface → return; IPv6 when off → return; ugate's
// own mark → return; to the router itself (fib daddr type local) → return;
// bypassed destinations → return; excluded sources → return; then
// redirect to :PORT when the TCP port is in ugate_ports — only for included
// sources when any include list is set.
//
// DNS capture (dnsPort): right after the router-itself return, port-53 UDP
// and TCP jump to ugate_dns, which returns for excluded sources and
// redirects the rest (included sources only, when include lists are set) to
// the DNS listener. The bypass lists do not apply: a query to any resolver
// is answered by ugate, none leaks. Queries to the router's own addresses
// (dnsmasq) are left alone, and the output chain never takes DNS: the
// router's own resolver is pointed at ugate in its config instead.

import { hex } from './bytes.js'
import { ConfigError, show } from './errors.js'
import { formatCidr, parseCidr, samePrefix, type Cidr } from './ip.js'

const NFT_TABLE = 'inet ugate'

/** Reserved IPv4 ranges never captured (conventions §5). */
export const DEFAULT_BYPASS4: readonly string[] = Object.freeze([
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
])

/** Reserved IPv6 ranges never captured (conventions §5). */
export const DEFAULT_BYPASS6: readonly string[] = Object.freeze(['::1/128', 'fc00::/7', 'fe80::/10', 'ff00::/8'])

const DEFAULT_CAPTURE_PORTS: readonly number[] = Object.freeze([80, 443])

export interface CaptureOptions {
  /** ugate's redirect listener port. */
  redirectPort: number
  /**
   * ugate's SO_MARK: its own connections are skipped (`meta mark M return`).
   * Must be non-zero with routerSelf (else ugate would capture itself);
   * 0 without routerSelf leaves the rule out.
   */
  mark: number
  /** Interfaces whose incoming traffic is captured, e.g. ['br-lan']. */
  lanInterfaces: string[]
  /** Also capture the router's own traffic (a nat output chain). */
  routerSelf: boolean
  /** Capture IPv6 too. */
  ipv6: boolean
  /** Destination TCP ports to capture (set ugate_ports); DEFAULT_CAPTURE_PORTS when empty. */
  ports: number[]
  /**
   * Destinations never captured, added to DEFAULT_BYPASS4/6 (the reserved
   * ranges are always bypassed: capturing them would break the LAN).
   */
  bypass4: string[]
  bypass6: string[]
  /** When any include list is non-empty, only matching sources are captured. */
  includeSrc4?: string[]
  includeSrc6?: string[]
  excludeSrc4?: string[]
  excludeSrc6?: string[]
  /** MACs "aa:bb:cc:dd:ee:ff" (LAN traffic only). */
  includeMac?: string[]
  excludeMac?: string[]
  /** The DNS listener's port: LAN port-53 UDP and TCP are redirected there; absent or 0 = off. */
  dnsPort?: number
  /** UDP capture with TPROXY: the tproxy listener's port, its packet mark, the routing table. */
  udp?: TproxyOptions
  /**
   * TCP capture with TPROXY instead of REDIRECT (the original destination is
   * the accepted socket's local address, no conntrack NAT): the tproxy
   * listener's TCP port; mark and table as `udp`'s when both are set.
   * redirectPort is then unused.
   */
  tcpTproxy?: TproxyOptions
}

export interface TproxyOptions {
  port: number
  /** fwmark of TPROXYed packets; must differ from `mark`. */
  mark: number
  table: number
}

/** The whole ruleset, for `nft -f -`. Throws ConfigError whose path is the capture option ("lanInterfaces[1]"). */
export function nftRuleset(opts: CaptureOptions): string {
  if (opts === null || typeof opts !== 'object') throw new ConfigError('capture', 'options missing', opts)
  const mark = markValue(opts.mark, opts.routerSelf === true)
  const tcpTproxy = opts.tcpTproxy === undefined ? null : tproxyOptions(opts.tcpTproxy, mark, 'tcpTproxy')
  const redirectPort = tcpTproxy === null ? port(opts.redirectPort, 'redirectPort') : 0
  const routerSelf = bool(opts.routerSelf, 'routerSelf')
  const ipv6 = bool(opts.ipv6, 'ipv6')
  const lan = strings(opts.lanInterfaces, 'lanInterfaces', ifname)
  const uniqueLan = [...new Set(lan)]
  if (uniqueLan.length === 0 && !routerSelf) {
    throw new ConfigError(
      'lanInterfaces',
      'is empty and routerSelf is off: nothing would be captured',
      opts.lanInterfaces,
    )
  }
  const portList = strings(opts.ports ?? [], 'ports', port)
  const ports = [...new Set(portList.length > 0 ? portList : DEFAULT_CAPTURE_PORTS)].sort((a, b) => a - b)
  const bypass4 = cidrs([...DEFAULT_BYPASS4], 4, 'bypass4').concat(cidrs(opts.bypass4 ?? [], 4, 'bypass4'))
  const bypass6 = cidrs([...DEFAULT_BYPASS6], 6, 'bypass6').concat(cidrs(opts.bypass6 ?? [], 6, 'bypass6'))
  const inc4 = cidrs(opts.includeSrc4 ?? [], 4, 'includeSrc4')
  const inc6 = cidrs(opts.includeSrc6 ?? [], 6, 'includeSrc6')
  const exc4 = cidrs(opts.excludeSrc4 ?? [], 4, 'excludeSrc4')
  const exc6 = cidrs(opts.excludeSrc6 ?? [], 6, 'excludeSrc6')
  const incMac = strings(opts.includeMac ?? [], 'includeMac', mac)
  const excMac = strings(opts.excludeMac ?? [], 'excludeMac', mac)
  if (!ipv6 && inc6.length > 0) throw new ConfigError('includeSrc6', 'is set but ipv6 is off', opts.includeSrc6)
  const dnsPort = opts.dnsPort === undefined || opts.dnsPort === 0 ? 0 : port(opts.dnsPort, 'dnsPort')
  const udp = opts.udp === undefined ? null : tproxyOptions(opts.udp, mark, 'udp')
  // One mark and one routing table deliver both protocols locally.
  if (udp !== null && tcpTproxy !== null && (udp.mark !== tcpTproxy.mark || udp.table !== tcpTproxy.table))
    throw new ConfigError('tcpTproxy', "mark and table must be udp's", opts.tcpTproxy)
  const tp = udp ?? tcpTproxy

  const out: string[] = []
  const line = (depth: number, text: string) => out.push('\t'.repeat(depth) + text)
  const set = (name: string, type: string, elements: string[], interval: boolean) => {
    line(1, `set ${name} {`)
    line(2, `type ${type}`)
    if (interval) {
      line(2, 'flags interval')
      line(2, 'auto-merge')
    }
    if (elements.length > 0) line(2, `elements = { ${elements.join(', ')} }`)
    line(1, '}')
    out.push('')
  }
  const including = inc4.length + inc6.length + incMac.length > 0
  const redirect = `tcp dport @ugate_ports redirect to :${redirectPort}`
  // One tproxy statement per family and protocol: in an inet table `tproxy`
  // names the family; nft wants the transport protocol matched in the rule itself.
  const tproxy = (m: number): Actions => {
    const to = (fam: string, proto: string, port: number) =>
      `meta l4proto ${proto} tproxy ${fam} to :${port} meta mark set ${hex(m, 8)} accept`
    const each = (fam: string) => [
      ...(udp !== null ? [to(fam, 'udp', udp.port)] : []),
      ...(tcpTproxy !== null ? [to(fam, 'tcp', tcpTproxy.port)] : []),
    ]
    return ipv6 ? { v4: each('ip'), v6: each('ip6') } : { v4: each('ip') }
  }
  // What the TPROXY chains take: UDP but DNS; TCP to the captured ports.
  const tproxyFilter = () => {
    const protos = [...(udp !== null ? ['udp'] : []), ...(tcpTproxy !== null ? ['tcp'] : [])]
    line(2, `meta l4proto != ${protos.length === 1 ? protos[0] : `{ ${protos.join(', ')} }`} return`)
    if (udp !== null) line(2, 'udp dport 53 return')
    if (tcpTproxy !== null) line(2, 'tcp dport != @ugate_ports return')
  }

  out.push('# ugate transparent TCP capture; generated, load with: nft -f FILE')
  out.push(`table ${NFT_TABLE}`)
  out.push(`delete table ${NFT_TABLE}`)
  out.push(`table ${NFT_TABLE} {`)
  set('ugate_ports', 'inet_service', ports.map(String), false)
  set('ugate_bypass4', 'ipv4_addr', setElements(bypass4), true)
  if (ipv6) set('ugate_bypass6', 'ipv6_addr', setElements(bypass6), true)
  // Exclude sets are always there (empty or not), so a script can add
  // devices at run time: nft add element inet ugate ugate_exclude_mac { ... }
  set('ugate_exclude_src4', 'ipv4_addr', setElements(exc4), true)
  if (ipv6) set('ugate_exclude_src6', 'ipv6_addr', setElements(exc6), true)
  set('ugate_exclude_mac', 'ether_addr', uniqueSorted(excMac), false)
  if (inc4.length > 0) set('ugate_include_src4', 'ipv4_addr', setElements(inc4), true)
  if (inc6.length > 0) set('ugate_include_src6', 'ipv6_addr', setElements(inc6), true)
  if (incMac.length > 0) set('ugate_include_mac', 'ether_addr', uniqueSorted(incMac), false)

  const common = (dns = false) => {
    if (!ipv6) line(2, 'meta nfproto ipv6 return')
    if (mark !== 0) line(2, `meta mark ${hex(mark, 8)} return`)
    line(2, 'fib daddr type local return')
    if (dns) line(2, 'meta l4proto { tcp, udp } th dport 53 jump ugate_dns')
    line(2, 'ip daddr @ugate_bypass4 return')
    if (ipv6) line(2, 'ip6 daddr @ugate_bypass6 return')
  }
  // The LAN part of a prerouting chain: sources excluded, then `action` for
  // the included ones (every source when no include list is set).
  const lanSources = (a: Actions) => {
    line(2, 'ip saddr @ugate_exclude_src4 return')
    if (ipv6) line(2, 'ip6 saddr @ugate_exclude_src6 return')
    line(2, 'ether saddr @ugate_exclude_mac return')
    const both = a.v6 === undefined ? a.v4 : [...a.v4, ...a.v6]
    if (including) {
      if (inc4.length > 0) for (const x of a.v4) line(2, `ip saddr @ugate_include_src4 ${x}`)
      if (inc6.length > 0) for (const x of a.v6 ?? a.v4) line(2, `ip6 saddr @ugate_include_src6 ${x}`)
      if (incMac.length > 0) for (const x of both) line(2, `ether saddr @ugate_include_mac ${x}`)
    } else {
      for (const x of both) line(2, x)
    }
  }
  const lanSet = `{ ${uniqueLan.map((n) => `"${n}"`).join(', ')} }`
  if (uniqueLan.length > 0 && dnsPort !== 0) {
    line(1, 'chain ugate_dns {')
    lanSources({ v4: [`meta l4proto { tcp, udp } redirect to :${dnsPort}`] })
    line(1, '}')
    out.push('')
  }
  // With tcpTproxy the nat chains redirect no TCP: only DNS is left for them.
  const natChain = uniqueLan.length > 0 && (tcpTproxy === null || dnsPort !== 0)
  if (natChain) {
    line(1, 'chain ugate_prerouting {')
    line(2, 'type nat hook prerouting priority dstnat; policy accept;')
    line(2, `iifname != ${lanSet} return`)
    common(dnsPort !== 0)
    if (tcpTproxy === null) lanSources({ v4: [redirect] })
    line(1, '}')
  }
  if (routerSelf && tcpTproxy === null) {
    if (natChain) out.push('')
    line(1, 'chain ugate_output {')
    line(2, 'type nat hook output priority -100; policy accept;')
    common()
    line(2, redirect)
    line(1, '}')
  }
  if (tp !== null) {
    // UDP to port 53 is the DNS capture's; everything else goes to the tproxy listener.
    if (out[out.length - 1] !== '') out.push('')
    line(1, 'chain ugate_tproxy {')
    line(2, 'type filter hook prerouting priority mangle; policy accept;')
    tproxyFilter()
    // The router's own packets, marked by ugate_tproxy_out and looped through lo: already filtered there.
    const t = tproxy(tp.mark)
    if (routerSelf)
      for (const x of [...t.v4, ...(t.v6 ?? [])]) line(2, `iifname "lo" meta mark ${hex(tp.mark, 8)} ${x}`)
    if (uniqueLan.length > 0) {
      line(2, `iifname != ${lanSet} return`)
      common()
      lanSources(t)
    } else {
      line(2, 'return')
    }
    line(1, '}')
    if (routerSelf) {
      out.push('')
      line(1, 'chain ugate_tproxy_out {')
      line(2, 'type route hook output priority mangle; policy accept;')
      tproxyFilter()
      common()
      line(2, `meta mark set ${hex(tp.mark, 8)}`)
      line(1, '}')
    }
  }
  out.push('}')
  return out.join('\n') + '\n'
}

/**
 * Shell commands (for `sh -c`) that add the policy routing of UDP capture:
 * packets with the tproxy mark are delivered locally, where TPROXY's socket
 * takes them. A rule or route an earlier (crashed) run left is deleted
 * first, so running it again never duplicates anything.
 */
export function policyRoutingScript(o: TproxyOptions, ipv6: boolean, add: boolean): string {
  const t = tproxyOptions(o, 0, 'udp')
  const lines: string[] = []
  for (const ip of ipv6 ? ['ip', 'ip -6'] : ['ip']) {
    const rule = `fwmark ${hex(t.mark, 8)} lookup ${t.table}`
    // `ip rule del` removes one match per call: repeat until none is left.
    lines.push(`while ${ip} rule del ${rule} 2>/dev/null; do :; done`)
    lines.push(`${ip} route flush table ${t.table} 2>/dev/null`)
    if (add) {
      lines.push(`${ip} rule add ${rule} || exit 1`)
      lines.push(`${ip} route replace local default dev lo table ${t.table} || exit 1`)
    }
  }
  lines.push('exit 0')
  return lines.join('\n') + '\n'
}

/** What a prerouting chain does to a captured packet, per family (v6 absent: the same statements for both). */
interface Actions {
  v4: string[]
  v6?: string[]
}

/**
 * Removes ugate's table, for `nft -f -`. Idempotent: the first line creates
 * the table when it is missing, so stopping twice (or after a crash that
 * already lost it) is not an error.
 */
export function nftDeleteCommand(): string {
  return `table ${NFT_TABLE}\ndelete table ${NFT_TABLE}\n`
}

// ---- validation ---------------------------------------------------------------------

function tproxyOptions(v: TproxyOptions, ownMark: number, field: 'udp' | 'tcpTproxy'): TproxyOptions {
  if (v === null || typeof v !== 'object') throw new ConfigError(field, 'options missing', v)
  const p = port(v.port, `${field}.port`)
  const m = v.mark
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 1 || m > 0xffffffff)
    throw new ConfigError(`${field}.mark`, `${show(m)} is not a mark 1-4294967295`, m)
  if (m === ownMark)
    throw new ConfigError(`${field}.mark`, `${show(m)} is also ugate's own mark: the two must differ`, m)
  const t = v.table
  // 253-255 are the kernel's default, main and local tables.
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 0x7fffffff || (t >= 253 && t <= 255))
    throw new ConfigError(`${field}.table`, `${show(t)} is not a routing table number 1-2147483647 (not 253-255)`, t)
  return { port: p, mark: m, table: t }
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(field, `${show(v)} is not true or false`, v)
  return v
}

function port(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new ConfigError(field, `${show(v)} is not a port number 1-65535`, v)
  }
  return v
}

function markValue(v: unknown, routerSelf: boolean): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new ConfigError('mark', `${show(v)} is not a mark 0-4294967295`, v)
  }
  if (v === 0 && routerSelf) {
    throw new ConfigError(
      'mark',
      '0 with routerSelf: ugate needs a non-zero SO_MARK, or it would capture its own connections',
      v,
    )
  }
  return v
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/

function ifname(v: unknown, field: string): string {
  if (typeof v !== 'string' || !IFNAME.test(v)) {
    throw new ConfigError(field, `${show(v)} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`, v)
  }
  return v
}

const MAC = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/

function mac(v: unknown, field: string): string {
  if (typeof v !== 'string' || !MAC.test(v))
    throw new ConfigError(field, `${show(v)} is not a MAC address (aa:bb:cc:dd:ee:ff)`, v)
  return v.toLowerCase()
}

function strings<T>(v: unknown, field: string, check: (x: unknown, field: string) => T): T[] {
  if (!Array.isArray(v)) throw new ConfigError(field, `${show(v)} is not a list`, v)
  return v.map((x, i) => check(x, `${field}[${i}]`))
}

function cidrs(v: unknown, family: 4 | 6, field: string): Cidr[] {
  return strings(v, field, (x, f) => {
    const c = typeof x === 'string' ? parseCidr(x, false) : null
    if (c === null || c.family !== family) {
      throw new ConfigError(f, `${show(x)} is not an IPv${family} address or CIDR`, x)
    }
    return c
  })
}

/** Sorted, without duplicates and without prefixes inside other prefixes of the list. */
function setElements(list: Cidr[]): string[] {
  const sorted = list.slice().sort((a, b) => {
    for (let w = 0; w < 4; w++) {
      const d = (a.words[w]! >>> 0) - (b.words[w]! >>> 0)
      if (d !== 0) return d
    }
    return a.len - b.len
  })
  const kept: Cidr[] = []
  for (const c of sorted) {
    const last = kept[kept.length - 1]
    if (last !== undefined && last.len <= c.len && samePrefix(last.words, c.words, last.len)) continue
    kept.push(c)
  }
  return kept.map(formatCidr)
}

function uniqueSorted(list: string[]): string[] {
  return [...new Set(list)].sort()
}
