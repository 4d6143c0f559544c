// /etc/config/ugate → Config for the transparent UDP options: the tproxy
// listener, the capture section's udp options and a rule's `network`.

import t from 'tap'
import { configFromUci } from '../../src/core/uci-config.js'

const BASE = `
config listener 'cap'
	option type 'redirect'
	option address '::'
	option port '15001'

config listener 'udp'
	option type 'tproxy'
	option address '::'
	option port '15002'
	option udp_idle_timeout '30'
	option udp_dns_idle_timeout '5'
	option max_flows '1000'

config rule 'noquic'
	list network 'udp'
	list dst_port '443'
	option action 'reject'

config capture 'capture'
	option enabled '1'
	option listener 'cap'
	option udp '1'
	option udp_listener 'udp'
	option tproxy_mark '4096'
	option tproxy_table '100'
`

t.test('tproxy listener, UDP capture and a network rule from uci', async (t) => {
  const c = configFromUci(BASE, '/etc/config/ugate')
  t.match(c.listeners[1], {
    name: 'udp',
    type: 'tproxy',
    networks: ['udp'],
    udpIdleTimeoutMs: 30000,
    udpDnsIdleTimeoutMs: 5000,
    maxFlows: 1000,
  })
  t.same(c.rules[0], { name: 'noquic', network: ['udp'], dstPort: ['443'], action: { type: 'reject' } })
  t.match(c.capture, { enabled: true, udp: true, udpListener: 'udp', tproxyMark: 4096, tproxyTable: 100 })
})

t.test('bad UDP options name the file, line and uci option', async (t) => {
  const cases: Array<[string, string, string]> = [
    [
      "option max_flows '1000'",
      "option max_flows 'lots'",
      '/etc/config/ugate:7: udp.max_flows: "lots" is not a number',
    ],
    [
      "option max_flows '1000'",
      "option max_flows '0'",
      '/etc/config/ugate:7: udp.max_flows: 0 is not an integer 1-1000000',
    ],
    [
      "option udp_listener 'udp'",
      "option udp_listener 'cap'",
      '/etc/config/ugate:20: capture.udp_listener: "cap" is a redirect listener, not a tproxy listener',
    ],
    [
      "option tproxy_table '100'",
      "option tproxy_table '255'",
      '/etc/config/ugate:20: capture.tproxy_table: 255 is not a routing table number 1-2147483647 (not 253-255)',
    ],
    [
      "list network 'udp'",
      "list network 'icmp'",
      '/etc/config/ugate:15: noquic.network[0]: "icmp" is not a network (tcp, udp)',
    ],
  ]
  for (const [from, to, message] of cases) {
    t.throws(() => configFromUci(BASE.replace(from, to), '/etc/config/ugate'), { message }, message)
  }
})
