import { execFileSync, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import {
  DEFAULT_BYPASS4,
  DEFAULT_BYPASS6,
  nftDeleteCommand,
  nftRuleset,
  policyRoutingScript,
  type CaptureOptions,
} from '../../src/core/nft.js'
import { tempDir } from '../lib/temp.js'

/** A typical router: LAN bridge, the router's own traffic, IPv6, one excluded device. */
const TYPICAL: CaptureOptions = {
  redirectPort: 15001,
  mark: 0x100,
  lanInterfaces: ['br-lan'],
  routerSelf: true,
  ipv6: true,
  ports: [80, 443],
  bypass4: ['203.0.113.0/24'],
  bypass6: [],
  excludeSrc4: ['192.168.1.10'],
  excludeMac: ['AA:BB:CC:DD:EE:01'],
}

const GOLDEN = `# ugate transparent TCP capture; generated, load with: nft -f FILE
table inet ugate
delete table inet ugate
table inet ugate {
	set ugate_ports {
		type inet_service
		elements = { 80, 443 }
	}

	set ugate_bypass4 {
		type ipv4_addr
		flags interval
		auto-merge
		elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 203.0.113.0/24, 224.0.0.0/4, 240.0.0.0/4 }
	}

	set ugate_bypass6 {
		type ipv6_addr
		flags interval
		auto-merge
		elements = { ::1, fc00::/7, fe80::/10, ff00::/8 }
	}

	set ugate_exclude_src4 {
		type ipv4_addr
		flags interval
		auto-merge
		elements = { 192.168.1.10 }
	}

	set ugate_exclude_src6 {
		type ipv6_addr
		flags interval
		auto-merge
	}

	set ugate_exclude_mac {
		type ether_addr
		elements = { aa:bb:cc:dd:ee:01 }
	}

	chain ugate_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname != { "br-lan" } return
		meta mark 0x00000100 return
		fib daddr type local return
		ip daddr @ugate_bypass4 return
		ip6 daddr @ugate_bypass6 return
		ip saddr @ugate_exclude_src4 return
		ip6 saddr @ugate_exclude_src6 return
		ether saddr @ugate_exclude_mac return
		tcp dport @ugate_ports redirect to :15001
	}

	chain ugate_output {
		type nat hook output priority -100; policy accept;
		meta mark 0x00000100 return
		fib daddr type local return
		ip daddr @ugate_bypass4 return
		ip6 daddr @ugate_bypass6 return
		tcp dport @ugate_ports redirect to :15001
	}
}
`

/** LAN only, IPv4 only, an allow-list of devices, extra ports. */
const INCLUDE_ONLY: CaptureOptions = {
  redirectPort: 12345,
  mark: 0,
  lanInterfaces: ['br-lan', 'br-guest', 'wlan0.1'],
  routerSelf: false,
  ipv6: false,
  ports: [8443, 443, 80, 443],
  bypass4: ['10.0.0.0/8', '198.51.100.7/32', '198.51.100.0/24'], // overlaps collapse
  bypass6: [],
  includeSrc4: ['192.168.1.0/25', '192.168.1.77'],
  includeMac: ['02:00:00:00:00:0a'],
}

t.test('golden ruleset for a typical router', async (t) => {
  t.equal(nftRuleset(TYPICAL), GOLDEN)
})

const UDP = { port: 15002, mark: 0x7567, table: 30055 }

/** The chains UDP capture adds to TYPICAL (nothing else changes). */
const GOLDEN_UDP_CHAINS = `
	chain ugate_tproxy {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto != udp return
		udp dport 53 return
		iifname "lo" meta mark 0x00007567 meta l4proto udp tproxy ip to :15002 meta mark set 0x00007567 accept
		iifname "lo" meta mark 0x00007567 meta l4proto udp tproxy ip6 to :15002 meta mark set 0x00007567 accept
		iifname != { "br-lan" } return
		meta mark 0x00000100 return
		fib daddr type local return
		ip daddr @ugate_bypass4 return
		ip6 daddr @ugate_bypass6 return
		ip saddr @ugate_exclude_src4 return
		ip6 saddr @ugate_exclude_src6 return
		ether saddr @ugate_exclude_mac return
		meta l4proto udp tproxy ip to :15002 meta mark set 0x00007567 accept
		meta l4proto udp tproxy ip6 to :15002 meta mark set 0x00007567 accept
	}

	chain ugate_tproxy_out {
		type route hook output priority mangle; policy accept;
		meta l4proto != udp return
		udp dport 53 return
		meta mark 0x00000100 return
		fib daddr type local return
		ip daddr @ugate_bypass4 return
		ip6 daddr @ugate_bypass6 return
		meta mark set 0x00007567
	}
}
`

t.test('UDP capture: the TPROXY chains, the rest unchanged', async (t) => {
  const text = nftRuleset({ ...TYPICAL, udp: UDP })
  t.equal(text, GOLDEN.replace(/}\n$/, '') + GOLDEN_UDP_CHAINS)
  // Include lists: each family's tproxy statement only after its own family's set.
  const inc = nftRuleset({ ...INCLUDE_ONLY, includeSrc6: [], udp: UDP })
  t.match(inc, 'ip saddr @ugate_include_src4 meta l4proto udp tproxy ip to :15002')
  t.match(inc, 'ether saddr @ugate_include_mac meta l4proto udp tproxy ip to :15002')
  t.notMatch(inc, 'tproxy ip6', 'IPv4 only: no IPv6 tproxy statement')
  t.notMatch(inc, 'ugate_tproxy_out', 'no output chain without routerSelf')
  const both = nftRuleset({ ...TYPICAL, routerSelf: false, includeSrc6: ['fd00::/8'], udp: UDP })
  t.match(both, 'ip6 saddr @ugate_include_src6 meta l4proto udp tproxy ip6 to :15002')
  t.notMatch(both, 'ip6 saddr @ugate_include_src6 meta l4proto udp tproxy ip to', 'no IPv4 tproxy after an IPv6 set')
})

t.test('policy routing script: delete-then-add per family, removal without add', async (t) => {
  t.equal(
    policyRoutingScript(UDP, true, true),
    [
      'while ip rule del fwmark 0x00007567 lookup 30055 2>/dev/null; do :; done',
      'ip route flush table 30055 2>/dev/null',
      'ip rule add fwmark 0x00007567 lookup 30055 || exit 1',
      'ip route replace local default dev lo table 30055 || exit 1',
      'while ip -6 rule del fwmark 0x00007567 lookup 30055 2>/dev/null; do :; done',
      'ip -6 route flush table 30055 2>/dev/null',
      'ip -6 rule add fwmark 0x00007567 lookup 30055 || exit 1',
      'ip -6 route replace local default dev lo table 30055 || exit 1',
      'exit 0',
      '',
    ].join('\n'),
  )
  t.notMatch(policyRoutingScript(UDP, false, false), /ip -6|rule add|route replace/, 'IPv4 removal only')
  t.throws(() => policyRoutingScript({ ...UDP, table: 254 }, true, true), {
    message: 'udp.table: 254 is not a routing table number 1-2147483647 (not 253-255)',
  })
})

t.test('include lists, IPv4 only, no output chain', async (t) => {
  const text = nftRuleset(INCLUDE_ONLY)
  const chain = text.slice(text.indexOf('chain ugate_prerouting'))
  t.equal(
    chain,
    `chain ugate_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname != { "br-lan", "br-guest", "wlan0.1" } return
		meta nfproto ipv6 return
		fib daddr type local return
		ip daddr @ugate_bypass4 return
		ip saddr @ugate_exclude_src4 return
		ether saddr @ugate_exclude_mac return
		ip saddr @ugate_include_src4 tcp dport @ugate_ports redirect to :12345
		ether saddr @ugate_include_mac tcp dport @ugate_ports redirect to :12345
	}
}
`,
  )
  t.match(text, 'elements = { 80, 443, 8443 }')
  t.match(
    text,
    /set ugate_include_src4 \{[^}]*elements = \{ 192\.168\.1\.0\/25 \}/,
    '192.168.1.77 is inside /25: dropped',
  )
  t.match(
    text,
    'elements = { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 198.51.100.0/24, 224.0.0.0/4, 240.0.0.0/4 }',
  )
  t.notMatch(text, 'ip6', 'no IPv6 rules or sets')
  t.notMatch(text, 'meta mark', 'mark 0 without routerSelf: no mark rule')
  t.notMatch(text, 'ugate_output')
})

t.test('dns capture: port-53 UDP and TCP to the dns port, excludes and includes, before the bypass', async (t) => {
  const text = nftRuleset({ ...TYPICAL, dnsPort: 15353 })
  t.match(
    text,
    `	chain ugate_dns {
		ip saddr @ugate_exclude_src4 return
		ip6 saddr @ugate_exclude_src6 return
		ether saddr @ugate_exclude_mac return
		meta l4proto { tcp, udp } redirect to :15353
	}
`,
  )
  const pre = text.slice(text.indexOf('chain ugate_prerouting'), text.indexOf('chain ugate_output'))
  t.match(
    pre,
    `		fib daddr type local return
		meta l4proto { tcp, udp } th dport 53 jump ugate_dns
		ip daddr @ugate_bypass4 return`,
    'after the router-itself return, before the bypass',
  )
  const out = text.slice(text.indexOf('chain ugate_output'))
  t.notMatch(out, 'ugate_dns', "the router's own queries are not captured")
  const inc = nftRuleset({ ...INCLUDE_ONLY, dnsPort: 53 })
  t.match(
    inc,
    `		ip saddr @ugate_include_src4 meta l4proto { tcp, udp } redirect to :53
		ether saddr @ugate_include_mac meta l4proto { tcp, udp } redirect to :53
	}`,
    'include lists: only included sources',
  )
  t.notMatch(nftRuleset(TYPICAL), 'ugate_dns', 'off without dnsPort')
  t.notMatch(nftRuleset({ ...TYPICAL, dnsPort: 0 }), 'ugate_dns', 'off with dnsPort 0')
  t.notMatch(nftRuleset({ ...TYPICAL, lanInterfaces: [], dnsPort: 53 }), 'ugate_dns', 'no LAN: nothing to capture')
  t.throws(() => nftRuleset({ ...TYPICAL, dnsPort: 70000 }), /dnsPort: 70000 is not a port number/)
})

t.test('router only; ports default; host bits cleared', async (t) => {
  const text = nftRuleset({
    ...TYPICAL,
    lanInterfaces: [],
    ports: [],
    bypass4: ['198.51.100.77/24'],
    bypass6: ['2001:DB8:0:0:1::/64'],
  })
  t.notMatch(text, 'ugate_prerouting')
  t.match(text, 'chain ugate_output')
  t.match(text, 'elements = { 80, 443 }')
  t.match(text, '198.51.100.0/24')
  t.match(text, '2001:db8::/64')
})

t.test('defaults are the reserved ranges of conventions §5', async (t) => {
  t.same(DEFAULT_BYPASS4, [
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
  t.same(DEFAULT_BYPASS6, ['::1/128', 'fc00::/7', 'fe80::/10', 'ff00::/8'])
  t.equal(nftDeleteCommand(), 'table inet ugate\ndelete table inet ugate\n')
})

t.test('validation: every bad value is named, nothing reaches the text', async (t) => {
  const cases: Array<[Partial<CaptureOptions>, string]> = [
    [{ redirectPort: 0 }, 'redirectPort: 0 is not a port number 1-65535'],
    [{ redirectPort: 70000 }, 'redirectPort: 70000 is not a port number 1-65535'],
    [{ redirectPort: '15001' as unknown as number }, 'redirectPort: "15001" is not a port number 1-65535'],
    [{ mark: -1 }, 'mark: -1 is not a mark 0-4294967295'],
    [{ mark: 2 ** 32 }, 'mark: 4294967296 is not a mark 0-4294967295'],
    [{ mark: 1.5 }, 'mark: 1.5 is not a mark 0-4294967295'],
    [{ mark: 0 }, 'mark: 0 with routerSelf: ugate needs a non-zero SO_MARK, or it would capture its own connections'],
    [
      { lanInterfaces: ['br-lan', 'br-lan" } accept; #'] },
      'lanInterfaces[1]: "br-lan\\" } accept; #" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)',
    ],
    [
      { lanInterfaces: ['a-very-long-interface'] },
      'lanInterfaces[0]: "a-very-long-interface" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)',
    ],
    [{ lanInterfaces: ['eth*'] }, 'lanInterfaces[0]: "eth*" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)'],
    [{ lanInterfaces: [''] }, 'lanInterfaces[0]: "" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)'],
    [{ lanInterfaces: 'br-lan' as unknown as string[] }, 'lanInterfaces: "br-lan" is not a list'],
    [
      { lanInterfaces: [], routerSelf: false },
      'lanInterfaces: is empty and routerSelf is off: nothing would be captured',
    ],
    [{ ports: [80, 0] }, 'ports[1]: 0 is not a port number 1-65535'],
    [
      { ports: ['443; flush ruleset' as unknown as number] },
      'ports[0]: "443; flush ruleset" is not a port number 1-65535',
    ],
    [{ bypass4: ['10.0.0.0/8', '2001:db8::/32'] }, 'bypass4[1]: "2001:db8::/32" is not an IPv4 address or CIDR'],
    [{ bypass4: ['10.0.0.0/8 }'] }, 'bypass4[0]: "10.0.0.0/8 }" is not an IPv4 address or CIDR'],
    [{ bypass6: ['10.0.0.0/8'] }, 'bypass6[0]: "10.0.0.0/8" is not an IPv6 address or CIDR'],
    [{ bypass6: ['fe80::/129'] }, 'bypass6[0]: "fe80::/129" is not an IPv6 address or CIDR'],
    [{ includeSrc4: ['192.168.1.0/24', 'all'] }, 'includeSrc4[1]: "all" is not an IPv4 address or CIDR'],
    [{ excludeSrc6: ['::1/-1'] }, 'excludeSrc6[0]: "::1/-1" is not an IPv6 address or CIDR'],
    [{ includeSrc6: ['fd00::/8'], ipv6: false }, 'includeSrc6: is set but ipv6 is off'],
    [{ excludeMac: ['aa:bb:cc:dd:ee'] }, 'excludeMac[0]: "aa:bb:cc:dd:ee" is not a MAC address (aa:bb:cc:dd:ee:ff)'],
    [
      { includeMac: ['aa-bb-cc-dd-ee-ff'] },
      'includeMac[0]: "aa-bb-cc-dd-ee-ff" is not a MAC address (aa:bb:cc:dd:ee:ff)',
    ],
    [
      { includeMac: ['aa:bb:cc:dd:ee:fg'] },
      'includeMac[0]: "aa:bb:cc:dd:ee:fg" is not a MAC address (aa:bb:cc:dd:ee:ff)',
    ],
    [{ ipv6: 'yes' as unknown as boolean }, 'ipv6: "yes" is not true or false'],
    [{ udp: { ...UDP, port: 0 } }, 'udp.port: 0 is not a port number 1-65535'],
    [{ udp: { ...UDP, mark: 0 } }, 'udp.mark: 0 is not a mark 1-4294967295'],
    [{ udp: { ...UDP, mark: 0x100 } }, "udp.mark: 256 is also ugate's own mark: the two must differ"],
    [{ udp: { ...UDP, table: 255 } }, 'udp.table: 255 is not a routing table number 1-2147483647 (not 253-255)'],
    [
      { udp: { ...UDP, table: '1; reboot' as unknown as number } },
      'udp.table: "1; reboot" is not a routing table number 1-2147483647 (not 253-255)',
    ],
  ]
  for (const [over, message] of cases) {
    t.throws(() => nftRuleset({ ...TYPICAL, ...over }), { name: 'ConfigError', message }, message)
  }
})

// ---- the real thing: load into a throw-away network namespace -----------------------

function run(cmd: string, args: string[], input?: string): { status: number; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 20_000 })
  if (r.error) return { status: -1, out: String(r.error.message) }
  return { status: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

t.test('TCP with TPROXY: no REDIRECT, TCP to the captured ports in the TPROXY chains', async (t) => {
  const TCP = { ...UDP, port: 15003 }
  const text = nftRuleset({ ...TYPICAL, udp: UDP, tcpTproxy: TCP })
  t.notMatch(text, 'redirect to', 'no REDIRECT: neither the LAN nor the router-self nat chain')
  t.notMatch(text, 'chain ugate_prerouting', 'no nat prerouting chain without DNS capture')
  t.notMatch(text, 'chain ugate_output', 'no nat output chain')
  const chain = (name: string) => text.slice(text.indexOf(`chain ${name} {`)).split('\n\t}')[0]!
  const pre = chain('ugate_tproxy')
  t.match(pre, 'meta l4proto != { udp, tcp } return')
  t.match(pre, 'udp dport 53 return')
  t.match(pre, 'tcp dport != @ugate_ports return', 'TCP: only the captured ports')
  t.match(pre, 'ip saddr @ugate_exclude_src4 return', 'the same exclusions')
  t.match(pre, 'ip daddr @ugate_bypass4 return', 'the same bypass')
  for (const stmt of [
    'meta l4proto udp tproxy ip to :15002 meta mark set 0x00007567 accept',
    'meta l4proto tcp tproxy ip to :15003 meta mark set 0x00007567 accept',
    'meta l4proto tcp tproxy ip6 to :15003 meta mark set 0x00007567 accept',
    'iifname "lo" meta mark 0x00007567 meta l4proto tcp tproxy ip to :15003',
  ])
    t.match(pre, stmt)
  const out = chain('ugate_tproxy_out')
  t.match(out, 'tcp dport != @ugate_ports return', "the router's own TCP: the captured ports too")
  const dns = nftRuleset({ ...TYPICAL, dnsPort: 15353, tcpTproxy: TCP })
  t.match(dns, 'chain ugate_prerouting', 'with DNS capture: the nat chain, for DNS only')
  t.notMatch(dns, 'tcp dport @ugate_ports redirect', 'no TCP REDIRECT')
  t.match(dns, 'meta l4proto != tcp return', 'TCP alone in the TPROXY chain')
  t.notMatch(dns, 'udp dport 53 return', 'no UDP there')
  const inc = nftRuleset({ ...INCLUDE_ONLY, udp: UDP, tcpTproxy: TCP })
  t.match(inc, 'ip saddr @ugate_include_src4 meta l4proto tcp tproxy ip to :15003', 'include lists: each statement')
  t.match(inc, 'ip saddr @ugate_include_src4 meta l4proto udp tproxy ip to :15002')
  t.throws(() => nftRuleset({ ...TYPICAL, udp: UDP, tcpTproxy: { ...TCP, table: 77 } }), {
    message: "tcpTproxy: mark and table must be udp's",
  })
  t.throws(() => nftRuleset({ ...TYPICAL, tcpTproxy: { ...TCP, port: 0 } }), {
    message: 'tcpTproxy.port: 0 is not a port number 1-65535',
  })
})

t.test('loads into nftables, twice, and is deleted (network namespace)', async (t) => {
  const nft = run('nft', ['--version'])
  if (nft.status !== 0) {
    t.fail(
      `nft is not installed (${nft.out.trim()}): install it with "apt-get install nftables" — this test loads the ruleset for real`,
    )
    return
  }
  const ns = `ugate-nft-test-${process.pid}`
  const add = run('ip', ['netns', 'add', ns])
  if (add.status !== 0) {
    t.fail(`cannot create network namespace ${ns} (needs root and CAP_SYS_ADMIN): ${add.out.trim()}`)
    return
  }
  const dir = tempDir(t, 'ugate-nft-')
  t.teardown(() => run('ip', ['netns', 'del', ns]))
  const inNs = (args: string[], input?: string) => run('ip', ['netns', 'exec', ns, 'nft', ...args], input)
  const list = () => inNs(['list', 'table', 'inet', 'ugate'])

  const variants: Array<[string, CaptureOptions]> = [
    ['typical', TYPICAL],
    ['include-only', INCLUDE_ONLY],
    ['dns', { ...TYPICAL, dnsPort: 15353 }],
    ['dns-include-only', { ...INCLUDE_ONLY, dnsPort: 15353 }],
    [
      'router-only',
      { ...TYPICAL, lanInterfaces: [], includeSrc6: ['fd00::/8'], bypass6: ['2001:db8::/32', '::ffff:0:0/96'] },
    ],
    ['typical+udp', { ...TYPICAL, udp: UDP }],
    ['include-only+udp', { ...INCLUDE_ONLY, udp: UDP }],
    ['router-only+udp', { ...TYPICAL, lanInterfaces: [], includeSrc6: ['fd00::/8'], udp: UDP }],
    ['typical+udp+tcp-tproxy', { ...TYPICAL, udp: UDP, tcpTproxy: UDP }],
    ['include-only+tcp-tproxy+dns', { ...INCLUDE_ONLY, dnsPort: 15353, tcpTproxy: UDP }],
  ]
  for (const [name, opts] of variants) {
    const file = join(dir, `${name}.nft`)
    writeFileSync(file, nftRuleset(opts))
    const check = inNs(['-c', '-f', file])
    t.equal(check.status, 0, `${name}: nft -c accepts it ${check.out}`)
    const first = inNs(['-f', file])
    t.equal(first.status, 0, `${name}: first load ${first.out}`)
    const listed1 = list()
    t.equal(listed1.status, 0, `${name}: table listed`)
    const second = inNs(['-f', file])
    t.equal(second.status, 0, `${name}: second load (idempotent) ${second.out}`)
    const listed2 = list()
    t.equal(listed2.out, listed1.out, `${name}: the second load leaves the same table`)
    t.match(listed2.out, /(redirect|tproxy ip) to :\d+/, `${name}: has the redirect or tproxy rule`)
    t.equal(inNs(['list', 'tables']).out.trim(), 'table inet ugate', `${name}: one table only`)
  }
  // UDP's policy routing: run twice (a restart after a crash), one rule and route each; then removed.
  const sh = (script: string) => run('ip', ['netns', 'exec', ns, 'sh', '-c', script])
  const rules = (v: string) =>
    run('ip', ['netns', 'exec', ns, 'ip', v, 'rule', 'show'])
      .out.split('\n')
      .filter((l) => l.includes('lookup 30055')).length
  t.equal(run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']).status, 0)
  for (const round of [1, 2]) {
    const r = sh(policyRoutingScript(UDP, true, true))
    t.equal(r.status, 0, `policy routing added (round ${round}) ${r.out}`)
    t.same([rules('-4'), rules('-6')], [1, 1], `round ${round}: one fwmark rule per family`)
  }
  const routes = run('ip', ['netns', 'exec', ns, 'ip', 'route', 'show', 'table', '30055']).out.trim()
  t.equal(routes, 'local default dev lo scope host', 'one local route')
  t.equal(sh(policyRoutingScript(UDP, true, false)).status, 0, 'removal runs')
  t.same([rules('-4'), rules('-6')], [0, 0], 'no rule left')
  t.equal(run('ip', ['netns', 'exec', ns, 'ip', 'route', 'show', 'table', '30055']).out.trim(), '', 'no route left')
  // the typical one again, then check what the kernel holds
  const typical = join(dir, 'typical.nft')
  t.equal(inNs(['-f', typical]).status, 0)
  const listed = list().out
  t.match(listed, 'chain ugate_prerouting')
  t.match(listed, 'type nat hook prerouting priority dstnat; policy accept;')
  t.match(listed, 'chain ugate_output')
  t.match(listed, 'type nat hook output priority -100; policy accept;')
  t.match(listed, 'meta mark 0x00000100 return')
  t.match(listed, 'tcp dport @ugate_ports redirect to :15001')
  t.match(listed, '203.0.113.0/24')
  // a stale table with extra content (a crash, a hand edit) is replaced in one go
  t.equal(inNs(['add', 'chain', 'inet', 'ugate', 'ugate_stale']).status, 0)
  t.equal(inNs(['-f', typical]).status, 0)
  t.notMatch(list().out, 'ugate_stale', 'stale chain gone after a reload')
  // runtime additions to the exclude sets work (what a hotplug script would do)
  const addEl = inNs(['add', 'element', 'inet', 'ugate', 'ugate_exclude_mac', '{ 02:00:00:00:00:01 }'])
  t.equal(addEl.status, 0, `nft add element ${addEl.out}`)
  // delete, and delete again (idempotent)
  const del = inNs(['-f', '-'], nftDeleteCommand())
  t.equal(del.status, 0, `delete ${del.out}`)
  t.not(list().status, 0, 'table gone')
  t.equal(inNs(['list', 'tables']).out.trim(), '', 'no table left in the namespace')
  const del2 = inNs(['-f', '-'], nftDeleteCommand())
  t.equal(del2.status, 0, `second delete is not an error ${del2.out}`)
  // the ruleset loads through stdin too (how ugate will run it)
  t.equal(inNs(['-f', '-'], nftRuleset(TYPICAL)).status, 0, 'load through stdin')
  t.equal(
    execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'], { encoding: 'utf8' }).trim(),
    'table inet ugate',
  )
})
