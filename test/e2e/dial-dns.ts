// Dial-time name resolution against a name server that never answers: the
// `dns-timeout` outcome after dial.connectTimeout on the three paths that
// resolve a target (the native SOCKS5 handshake, native/mod_gate.c with
// ug_resolve; the HTTP proxy and a forward to a host name, dial.ts), and a
// connection closed while its name is still resolving (`ugate ctl close`, the
// client leaving). ugate runs in a mount namespace of its own whose
// /etc/resolv.conf names a DNS stand-in on a loopback address of this test;
// the stand-in prints every query, which is the event the tests wait on. The
// resolver's own timeout (resolv.conf `timeout:`) is longer than ugate's: its
// late failure reaches the DNS worker after the connection ended, and must
// change nothing (no second line, no fd, no crash; ASan at exit). Fields are
// compared with t.has (equal values), not t.match (a string matches a longer one).

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { request } from 'undici'
import { connsOf, listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { type DnsStandin, startDnsStandin } from '../lib/dns-standin.js'
import { sample } from '../lib/metrics.js'
import { type Reader, connectReader, socks5Address } from '../lib/proxy.js'
import { destroyClients, pollUntil, within } from '../lib/servers.js'
import { type Ugate, finish, runUgate, settleFds } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

t.teardown(destroyClients)

const SECRET = 'dial-dns-s3cret'
const noAuth = Buffer.from([5, 1, 0])

/** Names the stand-in never answers, one per connection so each query count is its own. */
const hang = (what: string) => `${what}.hang.test`

interface Resolver {
  dns: DnsStandin
  /** StartOptions.wrap: ugate in a mount namespace with the test's resolv.conf. */
  wrap: string[]
  dir: string
}

/**
 * A name server that never answers `silent`, on 127.53.x.y:53 (an address of
 * this test's own: the resolv.conf format has no port), named by the
 * resolv.conf ugate sees. `timeout:` bounds the resolver's own wait
 * (musl: in all; glibc: per try, one try here).
 */
async function silentResolver(t: Test, silent: string[], resolverTimeout: number): Promise<Resolver> {
  const dir = tempDir(t, 'ugate-dialdns-')
  const host = `127.53.${1 + (process.pid % 250)}.${1 + Math.floor(Math.random() * 250)}`
  const dns = await startDnsStandin(t, dir, {}, { host, port: 53, silent })
  const conf = join(dir, 'resolv.conf')
  writeFileSync(conf, `nameserver ${host}\noptions timeout:${resolverTimeout} attempts:1\n`)
  const script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
  return { dns, dir, wrap: ['unshare', '--mount', '--fork', 'sh', '-c', script, conf] }
}

/** ugate_resolve_duration_seconds_count{result} from the admin API (0 when absent). */
async function resolveCount(ug: Ugate, result: 'ok' | 'error'): Promise<number> {
  const res = await request(`http://127.0.0.1:${ug.port('admin-http')}/metrics`, {
    headers: { Authorization: `Bearer ${SECRET}` },
    reset: true,
  })
  const text = await res.body.text()
  return sample(text, `ugate_resolve_duration_seconds_count{result="${result}"}`) ?? 0
}

/**
 * Wait (bounded) until `n` JS lookups completed with an error: the resolver
 * gave up on names whose connections ended before. C's lookups (native
 * SOCKS) are not counted there; one started before a JS lookup of the same
 * resolver timeout is over when the JS one is (the same worker pool, the same wait).
 */
async function lateFailures(ug: Ugate, n: number): Promise<number> {
  return pollUntil(
    () => resolveCount(ug, 'error'),
    (seen) => seen >= n,
    20_000,
  )
}

/** A SOCKS5 CONNECT to `host`, not waiting for the reply. */
async function socksRequest(t: Test, port: number, host: string): Promise<Reader> {
  const r = await connectReader(port)
  r.sock.write(Buffer.concat([noAuth, Buffer.from([5, 1, 0]), socks5Address(host, 80)]))
  t.same([...(await r.read(2))], [5, 0], `${host}: no authentication`)
  return r
}

/** An HTTP CONNECT to `host`, not waiting for the answer. */
async function httpConnect(port: number, host: string): Promise<Reader> {
  const r = await connectReader(port)
  r.sock.write(`CONNECT ${host}:80 HTTP/1.1\r\nHost: ${host}:80\r\n\r\n`)
  return r
}

const statusOf = (data: Buffer) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(data.toString('latin1'))?.[1])

t.test('no answer within dial.connectTimeout: dns-timeout, the reply of each path, fds back', async (t) => {
  const names = { socks: hang('socks'), http: hang('http'), fwd: hang('fwd') }
  // ugate gives up after 0.5 s, the resolver after 3 s.
  const { dns, wrap } = await silentResolver(t, Object.values(names), 3)
  const ug = await startConfig(
    t,
    proxyConfig(
      [listener('mix', 'mixed'), listener('web', 'http'), listener('fwd', 'forward', { target: `${names.fwd}:80` })],
      { dial: { connectTimeout: 0.5 }, admin: { listen: '127.0.0.1:0', secret: SECRET } },
    ),
    { wrap },
  )

  // Native SOCKS5 (C): reply 0x04 (host unreachable), then a FIN.
  const socks = await socksRequest(t, ug.port('mix'), names.socks)
  await dns.waitFor(names.socks, 1)
  const socksEnd = await within(socks.rest(), 10_000, 'the SOCKS reply')
  t.same([...socksEnd.data], [5, 4, 0, 1, 0, 0, 0, 0, 0, 0], 'SOCKS5 reply 0x04')
  t.ok(socksEnd.ended, 'then a FIN')
  const [sl] = await waitConnsOf(ug, 'mix', 1)
  t.has(sl!.fields, { dst: `${names.socks}:80`, reason: 'dns-timeout', up: '0', down: '0' })
  t.ok(Number(sl!.fields.ms) >= 500, 'after the connect timeout', { ms: sl!.fields.ms })

  // HTTP proxy (JS): 504 Gateway Timeout.
  const http = await httpConnect(ug.port('web'), names.http)
  await dns.waitFor(names.http, 1)
  const httpEnd = await within(http.rest(), 10_000, 'the HTTP answer')
  t.equal(statusOf(httpEnd.data), 504, 'HTTP 504', { answer: httpEnd.data.toString('latin1') })
  const [hl] = await waitConnsOf(ug, 'web', 1)
  t.has(hl!.fields, { dst: `${names.http}:80`, reason: 'dns-timeout', up: '0' })

  // A forward to a host name (JS): nothing sent, a RST.
  const fwd = await connectReader(ug.port('fwd'))
  await dns.waitFor(names.fwd, 1)
  const fwdEnd = await within(fwd.rest(), 10_000, 'the forward closed')
  t.same([fwdEnd.data.length, fwdEnd.error?.code], [0, 'ECONNRESET'], 'forward: nothing, then a RST')
  const [fl] = await waitConnsOf(ug, 'fwd', 1)
  t.has(fl!.fields, { dst: `${names.fwd}:80`, reason: 'dns-timeout', up: '0', down: '0' })

  // The resolver gives up later: counted, and nothing else happens.
  t.equal(await lateFailures(ug, 2), 2, 'both JS lookups failed later (the resolver timed out)')
  t.same(
    ['mix', 'web', 'fwd'].map((l) => connsOf(ug, l).length),
    [1, 1, 1],
    'one access line each, also after the late failures',
  )
  await settleFds(ug)
  await finish(t, ug, 3)
})

type Live = { id: number; listener: string; stage: string; dst?: string }

t.test('closed while its name resolves: ctl close, the client leaving; the late failure changes nothing', async (t) => {
  const names = {
    socksClose: hang('socks-close'),
    fwdClose: hang('fwd-close'),
    socksGone: hang('socks-gone'),
    fwdGone: hang('fwd-gone'),
    socksHalf: hang('socks-half'),
  }
  // The resolver gives up after 12 s, ugate (connect timeout) after 8 s: time
  // for ctl (two runs of it, slow under ASan on a loaded machine) to close first.
  const { dns, wrap, dir } = await silentResolver(t, Object.values(names), 12)
  const socket = join(dir, 'admin.sock')
  const ug = await startConfig(
    t,
    proxyConfig(
      [
        listener('mix', 'mixed'),
        listener('fwd-close', 'forward', { target: `${names.fwdClose}:80` }),
        listener('fwd-gone', 'forward', { target: `${names.fwdGone}:80` }),
      ],
      { dial: { connectTimeout: 8 }, admin: { socket, listen: '127.0.0.1:0', secret: SECRET } },
    ),
    { wrap },
  )
  const ctl = (...args: string[]) => runUgate(['ctl', '--socket', socket, ...args])
  const list = () => (JSON.parse(ctl('--json', 'connections').stdout) as { connections: Live[] }).connections

  // ctl close, native SOCKS: listed while its lookup hangs; ends with reason closed.
  const socks = await socksRequest(t, ug.port('mix'), names.socksClose)
  await dns.waitFor(names.socksClose, 1)
  const sc = list().find((c) => c.dst === `${names.socksClose}:80`)
  t.has(sc, { listener: 'mix' }, 'the SOCKS connection is listed while resolving', { list: list() })
  t.same([ctl('close', String(sc!.id)).code], [0], 'ctl close (SOCKS)')
  const socksEnd = await within(socks.rest(), 10_000, 'SOCKS closed by ctl')
  t.equal(socksEnd.data[1], 1, 'SOCKS5 reply 0x01 (general failure)', { data: socksEnd.data.toString('hex') })
  t.has((await waitConnsOf(ug, 'mix', 1))[0]!.fields, { dst: `${names.socksClose}:80`, reason: 'closed', up: '0' })

  // ctl close, a forward to a host name (JS).
  const fwd = await connectReader(ug.port('fwd-close'))
  await dns.waitFor(names.fwdClose, 1)
  const fc = list().find((c) => c.listener === 'fwd-close')
  t.ok(fc, 'the forward is listed while resolving', { list: list() })
  t.same([ctl('close', String(fc!.id)).code], [0], 'ctl close (forward)')
  const fwdEnd = await within(fwd.rest(), 10_000, 'forward closed by ctl')
  t.same([fwdEnd.data.length, fwdEnd.error?.code], [0, 'ECONNRESET'], 'forward: nothing, then a RST')
  t.has((await waitConnsOf(ug, 'fwd-close', 1))[0]!.fields, { reason: 'closed', up: '0', down: '0' })
  t.same(list(), [], 'nothing listed after the closes')

  // The client leaves while its name resolves. Native SOCKS watches it for
  // the hang-up: client-eof at once, the lookup abandoned. A forward to a
  // host name (JS) notices when the lookup ends: dns-timeout. Each logged once.
  const gone = await socksRequest(t, ug.port('mix'), names.socksGone)
  await dns.waitFor(names.socksGone, 1)
  gone.sock.destroy()
  const [, sg] = await waitConnsOf(ug, 'mix', 2)
  t.has(sg!.fields, { dst: `${names.socksGone}:80`, reason: 'client-eof', up: '0', down: '0' })
  t.same(list(), [], 'the SOCKS connection is gone at once')
  const gf = await connectReader(ug.port('fwd-gone'))
  await dns.waitFor(names.fwdGone, 1)
  gf.sock.destroy()
  t.has((await waitConnsOf(ug, 'fwd-gone', 1))[0]!.fields, { reason: 'dns-timeout', up: '0', down: '0' })

  // Bytes after the request, then a FIN: a half-close, not a hang-up; the
  // lookup goes on to its timeout (the reply, then a FIN).
  const half = await socksRequest(t, ug.port('mix'), names.socksHalf)
  half.sock.end('payload')
  await dns.waitFor(names.socksHalf, 1)
  const halfEnd = await within(half.rest(), 20_000, 'the half-closed client answered')
  t.same([...halfEnd.data], [5, 4, 0, 1, 0, 0, 0, 0, 0, 0], 'SOCKS5 reply 0x04')
  const [, , sh] = await waitConnsOf(ug, 'mix', 3)
  t.has(sh!.fields, { dst: `${names.socksHalf}:80`, reason: 'dns-timeout', up: '0' })

  // Every lookup fails later (the resolver's own timeout): the JS ones are
  // counted; no connection is logged again, nothing stays open.
  t.equal(await lateFailures(ug, 2), 2, 'both JS lookups failed later')
  t.same(
    ['mix', 'fwd-close', 'fwd-gone'].map((l) => connsOf(ug, l).length),
    [3, 1, 1],
    'one access line per connection, also after the late failures',
  )
  t.same(list(), [], 'nothing listed')
  await settleFds(ug)
  await finish(t, ug, 5)
})
