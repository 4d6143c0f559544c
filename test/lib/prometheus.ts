// A real Prometheus server (Debian's `prometheus`) scraping ugate's /metrics
// every second with the bearer secret, asked through its HTTP API.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { requireCommand } from './http.js'
import { pollUntil, refusedPort, within } from './servers.js'
import type { TestLike } from './ugate.js'
import { tempDir } from './temp.js'

/** One series of an instant query's answer. */
export interface PromSeries {
  metric: Record<string, string>
  value: number
}

export interface Prometheus {
  /** The admin port each scrape target was given, by instance label (127.0.0.1:PORT). */
  instance(adminPort: number): string
  /**
   * Asks `expr` until `ok` holds for the answer (scrapes come on Prometheus'
   * own clock) or 30 s passed; returns the last answer. Throws if the query
   * itself fails.
   */
  query(expr: string, ok: (r: PromSeries[]) => boolean): Promise<PromSeries[]>
  /** Health of each scrape target, by instance. */
  targets(): Promise<Record<string, string>>
  /** SIGTERM, and its exit (its scrape connections close with it). */
  stop(): Promise<void>
}

/** Starts a server scraping 127.0.0.1:PORT/metrics of each admin port (job "ugate"); stopped on teardown. */
export async function startPrometheus(t: TestLike, adminPorts: number[], secret: string): Promise<Prometheus> {
  requireCommand('prometheus', 'prometheus')
  const dir = tempDir(t, 'ugate-prom-')
  const port = await refusedPort()
  const instance = (p: number) => `127.0.0.1:${p}`
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      'scrape_configs:',
      '  - job_name: ugate',
      '    authorization:',
      `      credentials: ${secret}`,
      '    static_configs:',
      `      - targets: [${adminPorts.map((p) => `"${instance(p)}"`).join(', ')}]`,
      '',
    ].join('\n'),
  )
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const exited = new Promise<void>((r) => prom.once('close', () => r()))
  const stop = async () => {
    prom.kill('SIGTERM')
    await exited
  }
  t.teardown(stop)
  let log = ''
  await within(
    new Promise<void>((resolve) =>
      prom.stderr!.on('data', (d: Buffer) => {
        log += d.toString()
        if (log.includes('Server is ready to receive web requests')) resolve()
      }),
    ),
    30000,
    'prometheus ready',
  )
  const api = async (path: string): Promise<any> => {
    const answer: any = await (await request(`http://127.0.0.1:${port}/api/v1/${path}`)).body.json()
    if (answer.status !== 'success') throw new Error(`prometheus ${path}: ${JSON.stringify(answer)}\n${log}`)
    return answer.data
  }
  return {
    instance,
    async query(expr, ok) {
      const series = async (): Promise<PromSeries[]> => {
        const data = await api(`query?query=${encodeURIComponent(expr)}`)
        if (data.resultType !== 'vector') throw new Error(`prometheus ${expr}: a ${data.resultType}, not a vector`)
        return data.result.map((r: any) => ({ metric: r.metric, value: Number(r.value[1]) }))
      }
      return pollUntil(series, ok, 30_000, 250)
    },
    async targets() {
      const data = await api('targets')
      return Object.fromEntries(data.activeTargets.map((a: any) => [a.labels.instance, a.health]))
    },
    stop,
  }
}
