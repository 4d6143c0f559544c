// The uci options of a dns listener and of capture.dns reach the validator
// as the JSON config would give them, and their errors point into the file.

import t from 'tap'
import { configFromUci } from '../../src/core/uci-config.js'

const UCI = `
config listener 'cap'
	option type 'redirect'
	option address '::'
	option port '15080'

config listener 'dns'
	option type 'dns'
	option address '::'
	option port '5353'
	list server '9.9.9.9'
	list server '[2620:fe::fe]:53'
	list server 'tls://dns.quad9.net@9.9.9.9'
	option ca_bundle '/etc/ugate/ca.pem'
	list host '192.168.1.5 nas.lan nas'
	list host 'fd00::5 nas.lan'
	list reject_address '0.0.0.0'
	option timeout '1.5'
	option cache_size '100'

config capture 'capture'
	option enabled '1'
	option listener 'cap'
	option dns '1'
	option dns_listener 'dns'
`

t.test('dns listener and capture.dns options', async (t) => {
  const c = configFromUci(UCI, '/etc/config/ugate')
  t.match(c.listeners[1], {
    type: 'dns',
    servers: [
      { transport: 'udp', endpoint: { host: '9.9.9.9', port: 53 } },
      { transport: 'udp', endpoint: { host: '2620:fe::fe', port: 53 } },
      { transport: 'tls', endpoint: { host: '9.9.9.9', port: 853 }, tlsName: 'dns.quad9.net' },
    ],
    caBundle: '/etc/ugate/ca.pem',
    hosts: { 'nas.lan': ['192.168.1.5', 'fd00::5'], nas: ['192.168.1.5'] },
    rejectAddresses: ['0.0.0.0'],
    timeoutMs: 1500,
    cacheSize: 100,
  })
  t.match(c.capture, { enabled: true, dns: true, dnsListener: 'dns' })
})

t.test('errors name the file, line and uci option', async (t) => {
  t.throws(() => configFromUci(UCI.replace("list host 'fd00::5 nas.lan'", "list host 'fd00::5'"), 'f'), {
    message: /^f:7: dns\.host\[1\]: "fd00::5" is not "ADDRESS NAME\.\.\."/,
  })
  t.throws(() => configFromUci(UCI.replace("option cache_size '100'", "option cache_size '-1'"), 'f'), {
    message: /^f:7: dns\.cache_size: -1 is not an integer/,
  })
  t.throws(() => configFromUci(UCI.replace("list server '9.9.9.9'", "list server 'tls://dns.quad9.net'"), 'f'), {
    message: /^f:7: dns\.server\[0\]: "tls:\/\/dns\.quad9\.net": "dns\.quad9\.net" is not an IP address/,
  })
  t.throws(() => configFromUci(UCI.replace("list reject_address '0.0.0.0'", "list reject_address 'x'"), 'f'), {
    message: /^f:7: dns\.reject_address\[0\]: "x" is not an IP address/,
  })
  t.throws(() => configFromUci(UCI.replace("option ca_bundle '/etc/ugate/ca.pem'", "option ca_bundle 'ca.pem'"), 'f'), {
    message: /^f:7: dns\.ca_bundle: "ca\.pem" is not an absolute file path/,
  })
  t.throws(() => configFromUci(UCI.replace("option dns_listener 'dns'", "option dns_listener 'cap'"), 'f'), {
    message: /dns_listener: "cap" is a redirect listener, not a dns listener/,
  })
})
