// `ugate ctl`'s tables and traffic line (src/core/ctl-format.ts).

import t from 'tap'
import {
  formatConnections,
  formatRules,
  formatStatus,
  formatTraffic,
  humanBytes,
  table,
  trafficSample,
} from '../../src/core/ctl-format.js'

t.test('table and byte sizes', async (t) => {
  t.equal(
    table(
      ['A', 'LONG'],
      [
        ['xyz', '1'],
        ['q', ''],
      ],
    ),
    'A    LONG\nxyz  1\nq',
  )
  t.equal(humanBytes(0), '0 B')
  t.equal(humanBytes(1023), '1023 B')
  t.equal(humanBytes(1536), '1.5 KiB')
  t.equal(humanBytes(5 * 1024 ** 3), '5.0 GiB')
})

t.test('status, connections, rules, traffic', async (t) => {
  const status = formatStatus({
    version: '0.1.0',
    pid: 7,
    uptime: 12,
    listeners: [{ name: 'mix', type: 'mixed', addr: '127.0.0.1:1080' }],
    connections: { live: 1, total: 9 },
    relays: { active: 1, total: 8, spliceCalls: 100, copyCalls: 0 },
    bytes: { up: 2048, down: 10 },
    capture: { enabled: false, listener: '' },
  })
  t.equal(
    status,
    [
      'ugate 0.1.0, pid 7, up 12 s',
      'connections: 1 live, 9 total; bytes up 2.0 KiB, down 10 B',
      'relays: 1 active, 8 total; splice calls 100, copy calls 0',
      'capture: off',
      '',
      'LISTENER  TYPE   ADDRESS',
      'mix       mixed  127.0.0.1:1080',
      '',
    ].join('\n'),
  )
  t.equal(formatConnections({ connections: [] }), 'no live connections\n')
  const conns = formatConnections({
    connections: [
      {
        id: 3,
        listener: 'mix',
        src: '127.0.0.1:5000',
        stage: 'relay',
        ms: 1500,
        up: 100,
        down: 2048,
        dst: 'example.com:443',
        rule: 'default',
        action: 'direct',
        user: 'alice',
      },
    ],
  })
  t.match(
    conns,
    /^ID +LISTENER +SOURCE +DESTINATION +HOST +RULE +STAGE +AGE +UP +DOWN\n3 +mix +127\.0\.0\.1:5000 +example\.com:443 +- +default→direct +relay +1\.5s +100 B +2\.0 KiB\n$/,
  )
  t.notMatch(conns, /alice/, 'the proxy user is not a column')
  const withFlows = formatConnections({
    connections: [],
    udpFlows: [
      {
        id: 4,
        listener: 'udp',
        src: '10.0.0.2:5000',
        dst: '192.0.2.1:443',
        host: 'quic.example',
        rule: 'default',
        action: 'direct',
        ms: 2500,
        up: 1200,
        down: 3072,
      },
    ],
  })
  t.match(
    withFlows,
    /\nudp-4 +udp +10\.0\.0\.2:5000 +192\.0\.2\.1:443 +quic\.example +default→direct +udp +2\.5s +1\.2 KiB +3\.0 KiB\n$/,
    'a UDP flow is a row with its closable id',
  )
  const full = formatStatus({
    version: '0.1.0',
    listeners: [],
    udp: {
      flowsLive: 2,
      flowsTotal: 9,
      flowsEvicted: 1,
      flowsExpired: 6,
      packetsUp: 30,
      bytesUp: 2048,
      packetsDown: 20,
      bytesDown: 1024,
      drops: { queueFull: 0, rejected: 3, busy: 0 },
    },
    dns: {
      names: 3,
      listeners: [{ name: 'dns', queries: 7, cached: 2, local: 1, forwarded: 4, failed: 1, malformed: 0, dropped: 0 }],
    },
  })
  t.match(
    full,
    /\nudp: 2 flows live, 9 total, 1 evicted \(flow cap\), 6 idle; datagrams up 30 \(2\.0 KiB\), down 20 \(1\.0 KiB\); drops rejected 3\n/,
    'status: the UDP counters',
  )
  t.match(
    full,
    /\nDNS +QUERIES +CACHED +LOCAL +FORWARDED +FAILED +MALFORMED +DROPPED\ndns +7 +2 +1 +4 +1 +0 +0\n$/,
    'status: the DNS counters per listener',
  )
  const rules = formatRules({
    rules: [
      { index: 0, type: 'DomainSuffix', payload: 'ads.test', proxy: 'REJECT', extra: { hitCount: 4 } },
      { index: 1, type: 'Match', payload: '', proxy: 'DIRECT', extra: { hitCount: 0 } },
    ],
  })
  t.equal(
    rules,
    '#  TYPE          PAYLOAD   PROXY   HITS\n0  DomainSuffix  ads.test  REJECT  4\n1  Match         *         DIRECT  0\n',
  )
  const s = trafficSample({ up: 100, down: 1000 }, { up: 2148, down: 1000 })
  t.same(s, { up: 2048, down: 0, upTotal: 2148, downTotal: 1000 })
  t.equal(formatTraffic(s), 'up 2.0 KiB/s  down 0 B/s  (total up 2.1 KiB, down 1000 B)\n')
  t.match(formatStatus({}), /^ugate -, pid -, up - s\n/, 'missing fields print as "-"')
  t.notMatch(formatStatus({}), /mesh:/, 'no mesh identity: no mesh line')
  t.match(
    formatStatus({
      mesh: { spiffeId: 'spiffe://td/ns/a/sa/b', nodeId: 'ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ' },
    }),
    /\nmesh: spiffe:\/\/td\/ns\/a\/sa\/b, node id ZE5XIZVEV35CCFLG4RKSNAD2ZKK3X6QMO7XAO4QNDQLJIB2DU3NQ\n/,
    'status: our SPIFFE id and node id',
  )
  const mesh = formatStatus({
    hbone: [
      {
        id: 4,
        role: 'client',
        peer: '10.0.0.2:15008',
        peerId: 'spiffe://td/ns/a/sa/b',
        state: 'open',
        streams: 2,
        streamsTotal: 7,
        bytesOut: 2048,
        bytesIn: 10,
        rttMs: 0.25,
      },
      { id: 5, role: 'server', peer: '10.0.0.3:40000', peerId: '', state: 'handshake', rttMs: null },
    ],
  })
  t.match(
    mesh,
    /\nTUNNEL +ROLE +PEER +PEER ID +STATE +STREAMS +TOTAL +OUT +IN +RTT\n4 +client +10\.0\.0\.2:15008 +spiffe:\/\/td\/ns\/a\/sa\/b +open +2 +7 +2\.0 KiB +10 B +0\.25 ms\n5 +server +10\.0\.0\.3:40000 +- +handshake +- +- +0 B +0 B +-\n$/,
    'HBONE tunnels: a table after the listeners',
  )
  const rev = formatStatus({
    hbone: [{ id: 9, role: 'server', reverse: true, peer: '198.51.100.2:40001', state: 'open', rttMs: 1 }],
    reverse: {
      registered: [
        {
          tunnel: 9,
          listener: 'mesh',
          identity: 'spiffe://td/ns/home/sa/a',
          node: 'N'.repeat(52),
          peer: '198.51.100.2:40001',
          ageMs: 61_000,
        },
      ],
      links: [
        {
          name: 'vps',
          relay: '203.0.113.1:15008',
          state: 'up',
          tunnel: 3,
          peerId: 'spiffe://td/ns/vps/sa/r',
          failures: 0,
          upMs: 5000,
        },
        { name: 'b', relay: 'b.example:15008', state: 'waiting', tunnel: null, peerId: '', failures: 4, upMs: 0 },
      ],
    },
  })
  t.match(rev, /\n9 +server reverse +198\.51\.100\.2:40001 /, 'a reverse tunnel is marked in the tunnel table')
  t.match(
    rev,
    /\nREVERSE +LISTENER +IDENTITY +NODE +PEER +AGE\n9 +mesh +spiffe:\/\/td\/ns\/home\/sa\/a +N{52} +198\.51\.100\.2:40001 +61s\n/,
    'gates registered here',
  )
  t.match(
    rev,
    /\nREVERSE LINK +RELAY +STATE +TUNNEL +RELAY ID +FAILURES +UP\nvps +203\.0\.113\.1:15008 +up +3 +spiffe:\/\/td\/ns\/vps\/sa\/r +0 +5s\nb +b\.example:15008 +waiting +- +- +4 +-\n$/,
    "this gate's own reverse tunnels",
  )
})
