// Bad handshakes on a socks, an http and an sni listener: garbage,
// truncated (the client sends part of a handshake, then FIN) and oversized
// (64 KiB) SOCKS, HTTP and TLS first flights. Each is answered the way its
// protocol says (SOCKS reply code, HTTP status, or a reset), closed, and
// logged with the reason; the gateway keeps serving, and its fd count
// returns to the baseline.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { listener, proxyConfig, startConfig, waitConnsOf } from '../lib/config.js'
import { curl, curlInfo, httpOrigin, originSummary } from '../lib/http.js'
import { connectReader } from '../lib/proxy.js'
import { KiB, prngBytes, within } from '../lib/servers.js'
import { finish, repoRoot } from '../lib/ugate.js'
import type { Ugate } from '../lib/ugate.js'

const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'handshakes', name))

interface Case {
  what: string
  /** Bytes the client sends. */
  send: Buffer
  /** FIN after sending (truncated handshakes). */
  fin?: boolean
  /** The access line's reason. */
  reason: string | RegExp
  /** What the client must have received before the close (exact bytes or a pattern on latin1 text); '' = nothing. */
  reply: Buffer | RegExp | ''
  /** Other access-line fields. */
  fields?: Record<string, unknown>
}

const b = (...bytes: number[]) => Buffer.from(bytes)
const s = (text: string) => Buffer.from(text, 'latin1')
const socks5Ok = b(5, 1, 0)

/** 64 KiB of printable junk with no NUL, CR or LF. */
const junk64k = Buffer.alloc(64 * KiB, 'A')

const SOCKS_CASES: Case[] = [
  {
    what: 'HTTP request to a socks port',
    send: s('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    reason: 'bad-protocol:first-byte-0x47',
    reply: '',
  },
  {
    what: 'random garbage',
    send: Buffer.concat([b(0x00), prngBytes(0xbad, 999)]),
    reason: 'bad-protocol:first-byte-0x00',
    reply: '',
  },
  { what: 'SOCKS5 greeting with no methods', send: b(5, 0), reason: 'socks5-invalid', reply: '' },
  {
    what: 'SOCKS5 request with version 4',
    send: Buffer.concat([socks5Ok, b(4, 1, 0, 1, 127, 0, 0, 1, 0, 80)]),
    reason: 'socks5-invalid',
    reply: b(5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0),
  },
  {
    what: 'SOCKS5 unknown command 0x09',
    send: Buffer.concat([socks5Ok, b(5, 9, 0, 1, 127, 0, 0, 1, 0, 80)]),
    reason: 'socks5-invalid',
    reply: b(5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0),
  },
  {
    what: 'SOCKS5 BIND',
    send: Buffer.concat([socks5Ok, b(5, 2, 0, 1, 127, 0, 0, 1, 0, 80)]),
    reason: 'command-not-supported:2',
    reply: b(5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0),
    fields: { dst: '127.0.0.1:80' },
  },
  {
    what: 'SOCKS5 address type 0x02',
    send: Buffer.concat([socks5Ok, b(5, 1, 0, 2, 127, 0, 0, 1, 0, 80)]),
    reason: 'socks5-invalid',
    reply: b(5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0),
  },
  { what: 'truncated SOCKS5 greeting', send: b(5, 2, 0), fin: true, reason: 'client-eof', reply: '' },
  {
    what: 'truncated SOCKS5 request',
    send: Buffer.concat([socks5Ok, b(5, 1, 0, 3, 16), s('example')]),
    fin: true,
    reason: 'client-eof',
    reply: b(5, 0),
  },
  { what: 'truncated SOCKS4 request', send: b(4, 1, 0, 80), fin: true, reason: 'client-eof', reply: '' },
  {
    what: 'SOCKS4 user id of 64 KiB',
    send: Buffer.concat([b(4, 1, 0, 80, 127, 0, 0, 1), junk64k]),
    reason: /^(socks4-invalid|too-large)$/,
    reply: b(0, 0x5b, 0, 0, 0, 0, 0, 0),
  },
  {
    what: 'SOCKS4a host name of 64 KiB',
    send: Buffer.concat([b(4, 1, 0, 80, 0, 0, 0, 1, 0), junk64k]),
    reason: /^(socks4-invalid|too-large)$/,
    reply: b(0, 0x5b, 0, 0, 0, 0, 0, 0),
  },
]

const HTTP_CASES: Case[] = [
  {
    what: 'binary garbage',
    send: Buffer.concat([b(0x00, 0xff), prngBytes(0xbad2, 998), s('\r\n\r\n')]),
    reason: 'http-invalid',
    reply: /^HTTP\/1\.1 400 Bad Request\r\n/,
  },
  {
    what: 'origin-form request to a proxy',
    send: s('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    reason: 'http-invalid',
    reply: /^HTTP\/1\.1 400 Bad Request\r\n/,
  },
  {
    what: 'ftp:// URI',
    send: s('GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n'),
    reason: 'http-invalid',
    reply: /^HTTP\/1\.1 400 Bad Request\r\n/,
  },
  {
    what: 'CONNECT without host:port',
    send: s('CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n'),
    reason: 'http-invalid',
    reply: /^HTTP\/1\.1 400 Bad Request\r\n/,
  },
  {
    what: 'bad header line',
    send: s('GET http://x/ HTTP/1.1\r\nno colon here\r\n\r\n'),
    reason: 'http-invalid',
    reply: /^HTTP\/1\.1 400 Bad Request\r\n/,
  },
  {
    what: 'truncated request head',
    send: s('GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n'),
    fin: true,
    reason: 'client-eof',
    reply: '',
  },
  {
    what: 'request line of 64 KiB',
    send: Buffer.concat([s('GET http://x/'), junk64k, s(' HTTP/1.1\r\n\r\n')]),
    reason: 'too-large',
    reply: /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/,
  },
]

const hello = fixture('curl-tls.bin')
/** A TLS record that claims a 64 KiB ClientHello (length field 0xFFFF), then 64 KiB. */
const bigHello = Buffer.concat([b(0x16, 3, 1, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff), junk64k])

const SNI_CASES: Case[] = [
  {
    what: 'binary garbage',
    send: Buffer.concat([b(0x00), prngBytes(0xbad3, 999)]),
    reason: 'no-server-name',
    reply: '',
    fields: { proto: 'unknown' },
  },
  {
    what: 'TLS record that is not a ClientHello',
    send: b(0x16, 3, 1, 0, 4, 0x02, 0, 0, 0),
    reason: 'sniff-invalid',
    reply: '',
    fields: { proto: 'unknown' },
  },
  { what: 'ClientHello claiming 64 KiB', send: bigHello, reason: 'sniff-invalid', reply: '' },
  {
    what: '64 KiB HTTP request head',
    send: Buffer.concat([s('GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: '), junk64k, s('\r\n\r\n')]),
    reason: 'sniff-invalid',
    reply: '',
  },
  {
    what: 'HTTP/1.0 request without Host',
    send: s('GET / HTTP/1.0\r\n\r\n'),
    reason: 'no-server-name',
    reply: '',
    fields: { proto: 'http' },
  },
]

/** Send one bad handshake; check the reply, the close and the access line. */
async function runCase(t: Test, ug: Ugate, lname: string, c: Case, n: number): Promise<void> {
  const r = await connectReader(ug.port(lname))
  // The server may reset while a big write is still going out: that is fine.
  r.sock.write(c.send, () => {
    if (c.fin) r.sock.end()
  })
  const res = await within(r.rest(), 15_000, `${lname} ${c.what}: closed by ugate`)
  r.sock.destroy()
  const got = res.data
  if (c.reply === '') t.equal(got.length, 0, `${lname} ${c.what}: nothing sent back`, { got: got.toString('hex') })
  else if (Buffer.isBuffer(c.reply))
    t.same([...got], [...c.reply], `${lname} ${c.what}: reply bytes ${c.reply.toString('hex')}`)
  else t.match(got.toString('latin1'), c.reply, `${lname} ${c.what}: reply`)
  const line = (await waitConnsOf(ug, lname, n))[n - 1]!
  t.match(
    line.fields,
    { listener: lname, up: '0', down: '0', splice: '0', reason: c.reason, ...c.fields },
    `${lname} ${c.what}: reason ${String(c.reason)}`,
  )
  t.comment(
    `${lname} ${c.what}: reason=${line.fields.reason} client saw ${res.ended ? 'FIN' : (res.error?.code ?? 'close')}`,
  )
}

// The access line should say what happened. These two cases are logged
// with a misleading reason (ugate bugs, found by this test):
// - a 64 KiB HTTP request head is answered 431, but logged http-invalid:
//   parseRequestHead itself refuses a head over 16 KiB (invalid, code 431)
//   before HandshakeStream's limit can throw TooLargeError, so serveHttp's
//   'too-large' branch is never reached;
// - a ClientHello cut short by the client's FIN is logged no-server-name
//   with proto=unknown: sniffFirstBytes turns EOF with buffered bytes into
//   proto 'unknown' (right for redirect, where the destination is known),
//   and serveSni then reports no name, while the client only hung up.
const EXPECTED_REASONS: Array<[string, Case]> = [
  [
    'http',
    {
      what: '64 KiB request head',
      send: Buffer.concat([s('GET http://x/ HTTP/1.1\r\nX-Big: '), junk64k, s('\r\n\r\n')]),
      reason: 'too-large',
      reply: /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/,
    },
  ],
  ['sni', { what: 'truncated ClientHello', send: hello.subarray(0, 100), fin: true, reason: 'client-eof', reply: '' }],
]

t.test('bad handshakes on socks, http and sni listeners', async (t) => {
  const origin = await httpOrigin(t, { name: 'still-up' })
  const ug = await startConfig(
    t,
    proxyConfig(
      [listener('socks', 'socks'), listener('http', 'http'), listener('sni', 'sni', { httpPort: origin.port })],
      {
        limits: { handshakeTimeout: 5 },
        rules: [{ domain: ['ok.test'], action: `forward:127.0.0.1:${origin.port}` }],
      },
    ),
  )
  let served = 0
  const stillServing = async (after: string) => {
    const r = await curl([
      '--socks5-hostname',
      `127.0.0.1:${ug.port('socks')}`,
      `http://localhost:${origin.port}/after`,
    ])
    t.equal(r.code, 0, `still serving after the ${after} cases`, curlInfo(r))
    const req = await origin.request(served++)
    t.equal(r.stdout.toString(), originSummary('still-up', req), `answer after the ${after} cases`)
  }
  const groups: Array<[string, Case[]]> = [
    ['socks', SOCKS_CASES],
    ['http', HTTP_CASES],
    ['sni', SNI_CASES],
  ]
  for (const [lname, cases] of groups) {
    let n = 0
    for (const c of cases) await runCase(t, ug, lname, c, ++n)
    await stillServing(lname)
  }
  const r = await curl([
    '--resolve',
    `ok.test:${ug.port('sni')}:127.0.0.1`,
    `http://ok.test:${ug.port('sni')}/sni-after`,
  ])
  t.equal(r.code, 0, 'the sni listener still routes', curlInfo(r))
  const total = SOCKS_CASES.length + HTTP_CASES.length + SNI_CASES.length + groups.length + 1
  await finish(t, ug, total)
})

t.test('oversized HTTP head and truncated ClientHello are logged as such', async (t) => {
  const ug = await startConfig(t, proxyConfig([listener('http', 'http'), listener('sni', 'sni')]))
  for (const [lname, c] of EXPECTED_REASONS) await runCase(t, ug, lname, c, 1)
  await finish(t, ug, EXPECTED_REASONS.length)
})
