// bench/sni-load.mjs — the load of bench/sni-relay.sh (not a test): a sink
// server, and a client that opens connections beginning with a real TLS
// ClientHello (SNI = NAME), then either streams bulk bytes (throughput) or
// waits for the server's first byte (setup time). With SOCKS (a port), each
// connection goes through that SOCKS5 proxy to NAME:PORT first (bench/mesh-relay.sh:
// a node name through gate B).
//   node sni-load.mjs sink PORT                          counts bytes; writes 1 byte on each accept
//   node sni-load.mjs bulk PORT NAME SECONDS [SOCKS]     one connection, bytes for SECONDS → JSON
//   node sni-load.mjs setup PORT NAME COUNT [SOCKS]      COUNT sequential connections → JSON (ms)
import net from 'node:net'
import tls from 'node:tls'

const [mode, port, name, arg, socks] = process.argv.slice(2)

/** A connection to 127.0.0.1:PORT, or through the SOCKS5 proxy to NAME:PORT: [socket, bytes after the reply]. */
function open() {
  return new Promise((resolve, reject) => {
    if (socks === undefined) {
      const s = net.connect(Number(port), '127.0.0.1', () => resolve([s, Buffer.alloc(0)]))
      s.once('error', reject)
      return
    }
    const s = net.connect(Number(socks), '127.0.0.1', () => s.write(Buffer.from([5, 1, 0])))
    s.once('error', reject)
    let head = Buffer.alloc(0)
    let greeted = false
    const onData = (d) => {
      head = Buffer.concat([head, d])
      if (!greeted) {
        if (head.length < 2) return
        head = head.subarray(2)
        greeted = true
        const n = Buffer.from(name)
        const p = Number(port)
        s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, n.length]), n, Buffer.from([p >> 8, p & 255])]))
      }
      if (head.length < 5) return
      const len = head[3] === 1 ? 10 : head[3] === 4 ? 22 : 7 + head[4]
      if (head.length < len) return
      s.off('data', onData)
      if (head[1] !== 0) return reject(new Error(`SOCKS5 reply ${head[1]}`))
      resolve([s, head.subarray(len)])
    }
    s.on('data', onData)
  })
}
const out = (o) => {
  process.stdout.write(JSON.stringify(o) + '\n')
  process.exit(0)
}

/** The ClientHello Node sends for NAME, caught on a throwaway socket pair. */
function clientHello(sni) {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d)
        s.destroy()
        srv.close()
      })
    })
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: srv.address().port, host: '127.0.0.1', servername: sni, rejectUnauthorized: false })
      c.on('error', () => {})
    })
  })
}

if (mode === 'sink') {
  net
    .createServer((s) => {
      s.on('error', () => {})
      s.write('x')
      s.on('data', () => {})
      s.on('end', () => s.end())
    })
    .listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'))
} else if (mode === 'bulk') {
  const hello = await clientHello(name)
  const chunk = Buffer.alloc(1 << 20, 0x61)
  const [s] = await open().catch((e) => out({ error: e.code ?? e.message }))
  let sent = 0
  let t0 = 0n
  let stop = false
  {
    s.write(hello)
    t0 = process.hrtime.bigint()
    setTimeout(() => (stop = true), Number(arg) * 1000)
    const pump = () => {
      while (!stop) {
        sent += chunk.length
        if (!s.write(chunk)) return s.once('drain', pump)
      }
      s.end()
    }
    pump()
  }
  s.on('data', () => {})
  s.on('close', () => {
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    out({ bytes: sent, secs, gbps: (sent * 8) / secs / 1e9 })
  })
  s.on('error', (e) => out({ error: e.code }))
} else if (mode === 'setup') {
  const hello = await clientHello(name)
  const ms = []
  for (let i = 0; i < Number(arg); i++) {
    const t0 = process.hrtime.bigint()
    const [s, early] = await open()
    await new Promise((resolve, reject) => {
      const done = () => {
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6)
        s.destroy()
        resolve()
      }
      s.write(hello)
      if (early.length > 0) return done()
      s.once('data', done)
      s.on('error', reject)
    })
  }
  ms.sort((a, b) => a - b)
  out({
    count: ms.length,
    p50: ms[Math.floor(ms.length / 2)],
    p90: ms[Math.floor(ms.length * 0.9)],
    mean: ms.reduce((a, b) => a + b, 0) / ms.length,
  })
}
