// capture.dns in network namespaces (client — router — server, see
// test/lib/netns.ts): dig in the client aims at the server namespace's own
// resolver (a stand-in on port 53 there); ugate in the router answers
// instead, through its upstream (another stand-in on port 5300), and the
// aimed-at resolver never sees the query: UDP and TCP, IPv4 and IPv6. An
// excluded source is not captured. A later captured TCP connection to an
// answered address is routed by the name (domain rule, access line).

import t from 'tap'
import { ADDR, TEST_ALLOW, IFACE, UGATE_MARK, checkTableGone, createTopology } from '../lib/netns.js'
import { digArgs, parseDig, requireDig, startDnsStandin } from '../lib/dns-standin.js'
import { finish, startUgate } from '../lib/ugate.js'

requireDig()

const CAP_PORT = 15080
const DNS_PORT = 15353
const UPSTREAM_PORT = 5300

const ZONE = {
  'www.example.test': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'] },
  'web.example.test': { A: [ADDR.server4], AAAA: [ADDR.server6] },
}

t.test('capture.dns: every LAN query answered by ugate, none reaches the aimed-at resolver', async (t) => {
  const topo = await createTopology(t)
  const [upstream, aimedAt] = await Promise.all([
    startDnsStandin(t, topo.dir, ZONE, { ns: topo.server, port: UPSTREAM_PORT }),
    startDnsStandin(t, topo.dir, ZONE, { ns: topo.server, port: 53 }),
  ])
  const cfg = topo.writeJson('ugate.json', {
    log: { level: 'debug' },
    relay: { shutdownGrace: 2 },
    dial: { connectTimeout: 5, mark: UGATE_MARK },
    listeners: [
      { name: 'cap', type: 'redirect', listen: `[::]:${CAP_PORT}`, allow: TEST_ALLOW },
      {
        name: 'dns',
        type: 'dns',
        listen: `[::]:${DNS_PORT}`,
        allow: TEST_ALLOW,
        servers: [`${ADDR.server4}:${UPSTREAM_PORT}`],
      },
    ],
    rules: [{ name: 'web-by-name', domain: ['web.example.test'], action: 'direct' }],
    capture: {
      enabled: true,
      listener: 'cap',
      lanInterfaces: [IFACE.routerLan],
      excludeSrc: [ADDR.clientExcluded4],
      dns: true,
      dnsListener: 'dns',
    },
  })
  const ug = await startUgate(t, ['run', '--config', cfg], { netns: topo.router })
  t.match(ug.events('capture-on')[0]?.fields, { port: String(CAP_PORT), dnsPort: String(DNS_PORT) })

  const cases = [
    { what: 'IPv4 UDP', server: ADDR.server4, name: 'www.example.test', type: 'A', want: '192.0.2.10', extra: [] },
    {
      what: 'IPv4 TCP',
      server: ADDR.server4,
      name: 'www.example.test',
      type: 'AAAA',
      want: '2001:db8::10',
      extra: ['+tcp'],
    },
    { what: 'IPv6 UDP', server: ADDR.server6, name: 'web.example.test', type: 'A', want: ADDR.server4, extra: [] },
    {
      what: 'IPv6 TCP',
      server: ADDR.server6,
      name: 'web.example.test',
      type: 'AAAA',
      want: ADDR.server6,
      extra: ['+tcp'],
    },
  ]
  for (const c of cases) {
    const r = await topo.exec(topo.client, digArgs(c.server, 53, c.name, c.type, [...c.extra, '+stats']))
    const d = parseDig(r.code, r.stdout + r.stderr)
    t.equal(d.status, 'NOERROR', `${c.what}: answered`, { raw: d.raw })
    t.same(
      d.answers.map((a) => a.data),
      [c.want],
      `${c.what}: the right answer`,
    )
    t.match(
      d.raw,
      new RegExp(`SERVER: ${c.server.replace(/[.:]/g, '\\$&')}#53`),
      `${c.what}: dig saw it come from ${c.server}`,
    )
  }
  t.same(aimedAt.queries, [], 'the resolver dig aimed at saw no query')
  t.ok(upstream.queries.length >= 4, 'ugate asked its upstream', { queries: upstream.queries })
  t.ok(
    upstream.queries.every((q) => q.from.replace(/^::ffff:/, '') === ADDR.routerWan4),
    'the upstream saw only the router (ugate)',
  )
  const dnsSrcs = ug.events('dns').map((l) => l.fields.src)
  t.match(
    dnsSrcs,
    [/^198\.18\.1\.2:/, /^198\.18\.1\.2:/, /^\[fd00:1::\d\]:/, /^\[fd00:1::\d\]:/],
    'ugate logged each client query',
  )

  // An excluded source goes to the resolver it aimed at.
  const ex = await topo.exec(
    topo.client,
    digArgs(ADDR.server4, 53, 'www.example.test', 'A', ['-b', ADDR.clientExcluded4]),
  )
  t.equal(parseDig(ex.code, ex.stdout).status, 'NOERROR')
  t.same(
    aimedAt.queries.map((q) => q.from.replace(/^::ffff:/, '')),
    [ADDR.clientExcluded4],
    'excluded source: not captured, the aimed-at resolver answered',
  )

  // A captured HTTP connection to the answered address carries only the address: routed by the name.
  const r = await topo.exec(topo.client, [
    'curl',
    '-sS',
    '--max-time',
    '10',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    `http://${ADDR.server4}/`,
  ])
  t.equal(r.stdout, '200', 'captured HTTP request answered', { stderr: r.stderr })
  const conns = await ug.waitForConns(3)
  const cap = conns.find((c) => c.fields.listener === 'cap')
  t.match(
    cap?.fields,
    { rule: 'web-by-name', dnsName: 'web.example.test', dst: `${ADDR.server4}:80` },
    'access line: the learnt name and its rule',
    {
      line: cap?.raw,
    },
  )
  const res = await finish(t, ug, 3)
  t.ok(
    res.stderr.some((l) => / info capture-off /.test(l)),
    'capture-off logged',
  )
  await checkTableGone(t, topo, 'after SIGTERM')
})
