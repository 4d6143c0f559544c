// /etc/config/ugate → Config for the transparent UDP options: the tproxy
// listener, the capture section's udp options and a rule's `network`.

import t from 'tap'
import { validateConfig } from '../../src/core/config.js'
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

t.test('udp_idle_timeout: a socks or mixed listener’s UDP ASSOCIATE idle timeout; http has no UDP', async (t) => {
  const proxy = (type: string) => `
config listener 'p'
	option type '${type}'
	option address '127.0.0.1'
	option port '1080'
	option udp_idle_timeout '12.5'
`
  for (const type of ['socks', 'mixed']) {
    t.match(configFromUci(proxy(type), 'f').listeners[0], { type, udpIdleTimeoutMs: 12500 }, type)
  }
  t.throws(() => configFromUci(proxy('http'), 'f'), { message: /^f:2: p\.udp_idle_timeout: unknown key/ })
  t.throws(() => configFromUci(proxy('socks').replace("'12.5'", "'0'"), 'f'), {
    message: /^f:2: p\.udp_idle_timeout: 0 is not a number of seconds from 0\.001 to 86400/,
  })
})

/** JSON key → its uci option, where the name is not the key in snake_case. */
const UCI_OPTION: Record<string, string> = { servers: 'server', hosts: 'host', rejectAddresses: 'reject_address' }
const snake = (key: string) => UCI_OPTION[key] ?? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** The keys the JSON validator takes at `path`, from its "unknown key" message. */
function jsonKeys(raw: Record<string, unknown>): string[] {
  try {
    validateConfig(raw)
  } catch (e) {
    const m = /unknown key \(expected one of: (.*)\)$/.exec((e as Error).message)
    if (m) return m[1]!.split(', ')
    throw e
  }
  throw new Error('the validator took an unknown key')
}

t.test('every JSON key of the UDP listeners and of capture has a uci option', async (t) => {
  const common = ['name', 'type', 'listen']
  for (const type of ['socks', 'mixed', 'tproxy', 'dns']) {
    const keys = jsonKeys({ listeners: [{ name: 'l', type, listen: '[::]:1', zzz: 1 }] }).filter(
      (k) => !common.includes(k),
    )
    t.ok(keys.length > 1, `${type}: ${keys.join(', ')}`)
    for (const key of keys) {
      // A dns listener needs a resolver before its other options are read.
      const server = type === 'dns' && key !== 'servers' ? "\tlist server '1.1.1.1'\n" : ''
      const text = `config listener 'l'\n\toption type '${type}'\n\toption address '::'\n\toption port '1'\n${server}\toption ${snake(key)} 'x'\n`
      // A bad value is refused by the validator under the JSON key's uci name, never as an unknown uci option.
      t.throws(
        () => configFromUci(text, 'f'),
        { message: new RegExp(`^f:1: l\\.${snake(key)}(\\[0\\])?: (?!unknown)`) },
        `${type}.${key}`,
      )
    }
  }
  const keys = jsonKeys({ listeners: [{ name: 'l', type: 'redirect', listen: '[::]:1' }], capture: { zzz: 1 } })
  for (const key of keys) {
    const option = { lanInterfaces: 'lan', includeSrc: 'include_src' }[key as 'lanInterfaces'] ?? snake(key)
    const r = (() => {
      try {
        configFromUci(`config capture 'capture'\n\toption ${option} 'x?'\n`, 'f')
        return 'accepted'
      } catch (e) {
        return (e as Error).message
      }
    })()
    t.notMatch(r, /unknown option/, `capture.${key}: uci option ${option}`)
  }
})
