import t from 'tap'
import {
  formatEndpoint,
  formatHostPort,
  isHostName,
  listenAddressesClash,
  parseEndpoint,
} from '../../src/core/address.js'
import { ipKey, isIPv4, isIPv6 } from '../../src/core/ip.js'
import { AddressError } from '../../src/core/errors.js'

t.test('isIPv4', async (t) => {
  for (const s of ['0.0.0.0', '127.0.0.1', '255.255.255.255', '10.0.0.1']) t.ok(isIPv4(s), s)
  for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', 'a.b.c.d', '1..2.3', ' 1.2.3.4']) {
    t.notOk(isIPv4(s), JSON.stringify(s))
  }
})

t.test('isIPv6', async (t) => {
  const good = [
    '::',
    '::1',
    '1::',
    'fe80::1',
    '2001:db8::8a2e:370:7334',
    '1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7::',
    '::ffff:192.0.2.1',
    '64:ff9b::10.0.0.1',
    'ABCD:ef01::',
  ]
  for (const s of good) t.ok(isIPv6(s), s)
  const bad = [
    '',
    ':',
    ':::',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    '12345::',
    'g::1',
    '1:2:3:4:5:6:7',
    '::1.2.3',
    '::ffff:256.0.0.1',
    'fe80::1%eth0',
    '[::1]',
    '1:2:3:4:5:6:7:8::',
  ]
  for (const s of bad) t.notOk(isIPv6(s), JSON.stringify(s))
})

t.test('isHostName', async (t) => {
  for (const s of ['localhost', 'example.com', 'a-b.c_d.example', 'x1', 'openwrt.lan', '1.example.com'])
    t.ok(isHostName(s), s)
  for (const s of [
    '',
    '-a.com',
    'a-.com',
    'a..b',
    'a b',
    'a.com.',
    'ex!ample',
    '1.2.3',
    '999',
    'a'.repeat(64),
    'é.com',
  ]) {
    t.notOk(isHostName(s), JSON.stringify(s))
  }
})

t.test('parseEndpoint: good', async (t) => {
  const cases: Array<[string, 'listen' | 'target', ReturnType<typeof parseEndpoint>]> = [
    ['127.0.0.1:6000', 'listen', { host: '127.0.0.1', port: 6000, kind: 'ipv4' }],
    ['0.0.0.0:0', 'listen', { host: '0.0.0.0', port: 0, kind: 'ipv4' }],
    ['[::1]:6000', 'listen', { host: '::1', port: 6000, kind: 'ipv6' }],
    ['[::]:65535', 'listen', { host: '::', port: 65535, kind: 'ipv6' }],
    ['127.0.0.1:5201', 'target', { host: '127.0.0.1', port: 5201, kind: 'ipv4' }],
    ['[2001:db8::1]:443', 'target', { host: '2001:db8::1', port: 443, kind: 'ipv6' }],
    ['localhost:80', 'target', { host: 'localhost', port: 80, kind: 'name' }],
    ['example.com:1', 'target', { host: 'example.com', port: 1, kind: 'name' }],
  ]
  for (const [text, role, want] of cases) t.same(parseEndpoint(text, role), want, `${role} ${text}`)
})

t.test('parseEndpoint: bad, with exact messages', async (t) => {
  const cases: Array<[string, 'listen' | 'target', string]> = [
    ['127.0.0.1:x', 'target', '"127.0.0.1:x" is not HOST:PORT (port "x" is not a number 1-65535)'],
    ['127.0.0.1:x', 'listen', '"127.0.0.1:x" is not HOST:PORT (port "x" is not a number 0-65535)'],
    ['127.0.0.1:0', 'target', '"127.0.0.1:0" is not HOST:PORT (port "0" is not a number 1-65535)'],
    ['127.0.0.1:65536', 'listen', '"127.0.0.1:65536" is not HOST:PORT (port "65536" is not a number 0-65535)'],
    ['127.0.0.1:', 'target', '"127.0.0.1:" is not HOST:PORT (port "" is not a number 1-65535)'],
    ['127.0.0.1:-1', 'target', '"127.0.0.1:-1" is not HOST:PORT (port "-1" is not a number 1-65535)'],
    ['127.0.0.1', 'target', '"127.0.0.1" is not HOST:PORT (missing ":PORT")'],
    ['', 'target', '"" is not HOST:PORT (missing ":PORT")'],
    [':80', 'target', '":80" is not HOST:PORT (missing HOST before ":")'],
    ['::1:80', 'target', '"::1:80" is not HOST:PORT (an IPv6 address needs brackets, e.g. "[::1]:80")'],
    ['[::1:80', 'target', '"[::1:80" is not HOST:PORT (missing "]" after the IPv6 address)'],
    ['[::1]', 'target', '"[::1]" is not HOST:PORT (missing ":PORT" after "]")'],
    ['[::1]80', 'target', '"[::1]80" is not HOST:PORT (missing ":PORT" after "]")'],
    ['[1.2.3.4]:80', 'target', '"[1.2.3.4]:80" is not HOST:PORT ("1.2.3.4" is not an IPv6 address)'],
    ['1.2.3.256:80', 'target', '"1.2.3.256:80" is not HOST:PORT (host "1.2.3.256" is not a valid IPv4 address)'],
    ['a b:80', 'target', '"a b:80" is not HOST:PORT (host "a b" is not a valid host name)'],
    [
      'localhost:6000',
      'listen',
      '"localhost:6000" is not a listen address (host "localhost" must be an IP address, e.g. 0.0.0.0 or [::])',
    ],
  ]
  for (const [text, role, message] of cases) {
    t.throws(() => parseEndpoint(text, role), { name: 'AddressError', message }, `${role} ${JSON.stringify(text)}`)
  }
  t.throws(() => parseEndpoint('x', 'target'), AddressError)
})

t.test('format', async (t) => {
  t.equal(formatHostPort('127.0.0.1', 80), '127.0.0.1:80')
  t.equal(formatHostPort('::1', 80), '[::1]:80')
  t.equal(formatHostPort('example.com', 443), 'example.com:443')
  t.equal(formatEndpoint(parseEndpoint('[fe80::1]:0', 'listen')), '[fe80::1]:0')
})

t.test('ipKey and clashes', async (t) => {
  t.equal(ipKey('::0001'), ipKey('::1'))
  t.equal(ipKey('0:0:0:0:0:0:0:1'), ipKey('::1'))
  t.not(ipKey('::1'), ipKey('::2'))
  const ep = (s: string) => parseEndpoint(s, 'listen')
  t.ok(listenAddressesClash(ep('127.0.0.1:6000'), ep('127.0.0.1:6000')))
  t.ok(listenAddressesClash(ep('0.0.0.0:6000'), ep('127.0.0.1:6000')), 'v4 wildcard')
  t.ok(listenAddressesClash(ep('[::1]:6000'), ep('[::]:6000')), 'v6 wildcard')
  t.ok(listenAddressesClash(ep('[::1]:6000'), ep('[0::1]:6000')), 'v6 spellings')
  t.notOk(listenAddressesClash(ep('127.0.0.1:6000'), ep('127.0.0.1:6001')))
  t.notOk(listenAddressesClash(ep('127.0.0.1:6000'), ep('127.0.0.2:6000')))
  t.ok(listenAddressesClash(ep('0.0.0.0:6000'), ep('[::]:6000')), '[::] is dual-stack: it holds the IPv4 port too')
  t.ok(listenAddressesClash(ep('[::]:6000'), ep('127.0.0.1:6000')), '[::] clashes with a specific IPv4 address')
  t.notOk(listenAddressesClash(ep('0.0.0.0:6000'), ep('[::1]:6000')), 'a specific IPv6 address is V6ONLY')
  t.notOk(isIPv6('1.2.3.4::'), 'a dotted quad only ends an IPv6 address')
  t.ok(isIPv6('::ffff:1.2.3.4'), 'as in a v4-mapped address')
  t.notOk(listenAddressesClash(ep('127.0.0.1:0'), ep('127.0.0.1:0')), 'port 0 picks distinct ports')
})
