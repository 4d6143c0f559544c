// bench/hbone-load.ts — the Node side of bench/hbone.sh (not a test; esbuild
// bundles it into the bench's temp dir). Modes, one JSON line of results each:
//   peer DIR TD HOST PORT             the ztunnel-like HBONE server on Node's http2
//                                     (test/lib/hbone.ts) with the identity in DIR;
//                                     prints "ready"
//   echo HOST PORT                    TCP echo (half-close passed on); prints "ready"
//   conns HOST PORT CONC SECONDS      new TCP connections for SECONDS, CONC at a
//                                     time: connect, 1 byte (NUL) there and back, close
//                                     (through capture each is a new HBONE stream)
//   handshakes HOST PORT DIR EXPECT CONC SECONDS
//                                     new TLS 1.3 + HTTP/2 connections (client
//                                     certificate from DIR, the peer's SPIFFE id
//                                     EXPECT), CONC at a time: connect, the peer's
//                                     SETTINGS, close
import net from 'node:net'
import { join } from 'node:path'
import { connectNodeHbone, readIdentity, startNodeHboneServer } from '../test/lib/hbone.js'

const [mode, ...args] = process.argv.slice(2)
const print = (o: unknown) => process.stdout.write((typeof o === 'string' ? o : JSON.stringify(o)) + '\n')
const noTest = { teardown: () => {}, comment: () => {} }

/** Runs `one` CONC at a time for SECONDS (each at least once); the count, errors and the median time of one. */
async function load(conc: number, seconds: number, one: () => Promise<void>): Promise<void> {
  const end = Date.now() + seconds * 1000
  const times: number[] = []
  let errors = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: conc }, async () => {
      do {
        const s = process.hrtime.bigint()
        try {
          await one()
          times.push(Number(process.hrtime.bigint() - s) / 1e6)
        } catch {
          errors++
        }
      } while (Date.now() < end)
    }),
  )
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  times.sort((a, b) => a - b)
  print({ n: times.length, errors, seconds: secs, rate: times.length / secs, p50_ms: times[times.length >> 1] ?? 0 })
}

function roundTrip(host: string, port: number): Promise<void> {
  return new Promise((ok, fail) => {
    const s = net.connect({ host, port })
    s.once('error', fail)
    // A NUL: the capture's sniffer knows at once it is neither TLS nor HTTP. A letter could
    // start an HTTP method, and the sniffer would wait for more up to its timeout (0.3 s).
    s.once('connect', () => s.write('\0'))
    s.once('data', () => s.end())
    s.once('close', (hadError) => (hadError ? fail(new Error('closed with an error')) : ok()))
    s.resume()
  })
}

switch (mode) {
  case 'peer': {
    const [dir, td, host, port] = args as [string, string, string, string]
    await startNodeHboneServer(noTest, {
      id: readIdentity(dir, ''),
      roots: join(dir, 'root-cert.pem'),
      trustDomain: td,
      host,
      port: Number(port),
    })
    print('ready')
    break
  }
  case 'echo': {
    const [host, port] = args as [string, string]
    net
      .createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {})
        s.pipe(s)
      })
      .listen(Number(port), host, () => print('ready'))
    break
  }
  case 'conns': {
    const [host, port, conc, secs] = args as [string, string, string, string]
    await load(Number(conc), Number(secs), () => roundTrip(host, Number(port)))
    break
  }
  case 'handshakes': {
    const [host, port, dir, expect, conc, secs] = args as [string, string, string, string, string, string]
    const id = readIdentity(dir, '')
    await load(Number(conc), Number(secs), async () => {
      const s = await connectNodeHbone({ host, port: Number(port), id, roots: id.root, expectSan: expect })
      await new Promise<void>((ok) => s.close(ok))
    })
    break
  }
  default:
    throw new Error(`unknown mode ${mode}`)
}
