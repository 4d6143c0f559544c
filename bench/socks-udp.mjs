// bench/socks-udp.mjs — SOCKS5 UDP ASSOCIATE benchmark for ugate (not a test):
// CPU of ugate per datagram its association relays (both ways, from its
// `ctl status` udp.socks counters), on 127.0.0.1. For each binary, in
// rotation per round and size: ugate with one socks listener, a UDP
// ASSOCIATE over its control connection, then bench/socks-udp-load.c sends
// COUNT datagrams in bursts of 64 through the relay to its own echo. Prints
// one line per run and the CPU per datagram of each binary, with the ratio of
// the others to the first. Only ratios within one run count on a busy machine.
//   node bench/socks-udp.mjs BIN [BIN...]      e.g. /work/main/build/ugate build/ugate
// Environment: BENCH_SIZES="1000 64", BENCH_COUNT=300000, BENCH_ROUNDS=3
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const bins = process.argv.slice(2)
const sizes = (process.env.BENCH_SIZES ?? '1000 64').split(' ').filter(Boolean).map(Number)
const count = Number(process.env.BENCH_COUNT ?? 300000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const die = (m) => {
  console.error(`socks-udp.mjs: ${m}`)
  process.exit(2)
}
if (bins.length === 0) die('usage: node bench/socks-udp.mjs BIN [BIN...]')
for (const s of sizes) if (!Number.isInteger(s) || s < 0 || s > 65497) die(`BENCH_SIZES: bad size '${s}'`)
if (!Number.isInteger(count) || count <= 0) die(`BENCH_COUNT must be a positive integer, not '${count}'`)
if (!Number.isInteger(rounds) || rounds <= 0) die(`BENCH_ROUNDS must be a positive integer, not '${rounds}'`)

const dir = mkdtempSync(join(tmpdir(), 'ugate-bench-socksudp-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const load = join(dir, 'load')
const src = join(dirname(fileURLToPath(import.meta.url)), 'socks-udp-load.c')
if (spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', load, src], { stdio: 'inherit' }).status !== 0)
  die(`cannot compile ${src}`)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** CPU ms of a process, all threads (utime + stime, at 100 ticks a second). */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}
function socksStatus(bin, socket) {
  const r = spawnSync(bin, ['ctl', '--json', '--socket', socket, 'status'], { encoding: 'utf8' })
  if (r.status !== 0) die(`${bin} ctl status: ${r.stderr}`)
  return JSON.parse(r.stdout).udp.socks
}
async function connect(port) {
  for (let i = 0; i < 100; i++) {
    try {
      return await new Promise((res, rej) => {
        const s = net.connect(port, '127.0.0.1', () => res(s))
        s.once('error', rej)
      })
    } catch {
      await sleep(100)
    }
  }
  die(`nothing listens on 127.0.0.1:${port}`)
}
function read(s, n) {
  return new Promise((res) => {
    let buf = Buffer.alloc(0)
    const on = (d) => {
      buf = Buffer.concat([buf, d])
      if (buf.length >= n) {
        s.off('data', on)
        res(buf)
      }
    }
    s.on('data', on)
  })
}
async function freePort() {
  const s = net.createServer()
  await new Promise((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address()
  await new Promise((r) => s.close(r))
  return port
}

let n = 0
async function run(bin, size) {
  const port = await freePort()
  const socket = join(dir, `admin${n}.sock`)
  const config = join(dir, `config${n++}.json`)
  const listeners = [{ name: 's', type: 'socks', listen: `127.0.0.1:${port}` }]
  writeFileSync(config, JSON.stringify({ log: { level: 'warn' }, admin: { socket }, listeners }))
  const ug = spawn(bin, ['run', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] })
  const ctl = await connect(port)
  ctl.write(Buffer.from([5, 1, 0]))
  await read(ctl, 2)
  ctl.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])) // UDP ASSOCIATE; the first datagram names the port
  const reply = await read(ctl, 10)
  if (reply[1] !== 0 || reply[3] !== 1) die(`${bin}: UDP ASSOCIATE refused (${reply.toString('hex')})`)
  const before = socksStatus(bin, socket)
  const cpu0 = cpuMs(ug.pid)
  const r = spawnSync(load, [String(reply.readUInt16BE(8)), String(size), String(count)], { encoding: 'utf8' })
  if (r.status !== 0) die(`load: ${r.stderr}`)
  const cpu = cpuMs(ug.pid) - cpu0
  const after = socksStatus(bin, socket)
  ctl.destroy()
  ug.kill('SIGTERM')
  await new Promise((res) => ug.once('exit', res))
  const [sent, received, lost] = r.stdout.trim().split(' ').map(Number)
  const relayed = after.packetsUp - before.packetsUp + after.packetsDown - before.packetsDown
  return { cpu, relayed, sent, received, lost }
}

const total = new Map()
for (let round = 0; round < rounds; round++)
  for (const size of sizes)
    for (const bin of bins) {
      const x = await run(bin, size)
      const t = total.get(`${size} ${bin}`) ?? { cpu: 0, relayed: 0 }
      total.set(`${size} ${bin}`, { cpu: t.cpu + x.cpu, relayed: t.relayed + x.relayed })
      console.log(
        `round ${round} ${size} B ${bin}: ${x.relayed} datagrams relayed (${x.lost} lost), ` +
          `CPU ${x.cpu} ms, ${((x.cpu * 1000) / x.relayed).toFixed(2)} µs/datagram`,
      )
    }
for (const size of sizes) {
  const per = bins.map((b) => {
    const t = total.get(`${size} ${b}`)
    return (t.cpu * 1000) / t.relayed
  })
  const cols = bins.map((b, i) => `${b} ${per[i].toFixed(2)} µs` + (i > 0 ? ` (${(per[i] / per[0]).toFixed(2)}x)` : ''))
  console.log(`${size} B, CPU per datagram: ${cols.join(', ')}`)
}
