'use strict';
'require view';
'require dom';
'require poll';
'require rpc';

/*
 * ugate status: the service state from procd, and what the running gateway
 * reports on its ubus object `ugate` (the same JSON as `ugate ctl status`
 * and `ugate ctl connections`): listeners, rule hits, connections, UDP
 * flows, mesh tunnels and reverse tunnels, DNS. Refreshed every 5 s; the throughput graph
 * asks for the byte totals every 2 s and draws the last 5 minutes as SVG.
 */

const callServiceList = rpc.declare({
	object: 'service',
	method: 'list',
	params: ['name'],
	expect: { '': {} }
});

const callStatus = rpc.declare({
	object: 'ugate',
	method: 'status',
	expect: { '': {} }
});

const callConnections = rpc.declare({
	object: 'ugate',
	method: 'connections',
	expect: { '': {} }
});

/* Connections listed at most; the rest are counted. */
const MAX_ROWS = 200;

/* The throughput graph: a sample every GRAPH_POLL seconds, GRAPH_POINTS of them (5 minutes). */
const GRAPH_POLL = 2;
const GRAPH_POINTS = 150;
const GRAPH_W = 600;
const GRAPH_H = 150;
const SVG_NS = 'http://www.w3.org/2000/svg';

function formatBytes(n) {
	const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
	let i = 0;

	n = Number(n) || 0;

	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}

	return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

function formatDuration(seconds) {
	let s = Math.max(0, Math.floor(Number(seconds) || 0));
	const d = Math.floor(s / 86400),
		h = Math.floor(s / 3600) % 24,
		m = Math.floor(s / 60) % 60;

	s %= 60;

	if (d > 0) return '%dd %dh %dm'.format(d, h, m);

	if (h > 0) return '%dh %dm %ds'.format(h, m, s);

	return m > 0 ? '%dm %ds'.format(m, s) : '%ds'.format(s);
}

/* procd's view: { pid } of the first running instance, or null. */
function serviceInstance(list) {
	const instances = (list && list.ugate && list.ugate.instances) || {};

	for (const name in instances) if (instances[name] && instances[name].running) return instances[name];

	return null;
}

function table(titles, rows, empty) {
	return E(
		'table',
		{ class: 'table' },
		[
			E(
				'tr',
				{ class: 'tr table-titles' },
				titles.map(function (t) {
					return E('th', { class: 'th' }, t);
				})
			)
		].concat(
			rows.length
				? rows.map(function (r) {
						return E(
							'tr',
							{ class: 'tr' },
							r.map(function (c, i) {
								return E('td', { class: 'td', 'data-title': titles[i] }, c == null ? '-' : String(c));
							})
						);
					})
				: [E('tr', { class: 'tr placeholder' }, E('td', { class: 'td', colspan: titles.length }, E('em', empty)))]
		)
	);
}

/* "5 (queue full 3, busy 2)": the datagrams dropped, by the reasons that happened. */
function formatDrops(drops) {
	const reasons = Object.keys(drops || {}).filter(function (k) {
		return Number(drops[k]) > 0;
	});
	const total = reasons.reduce(function (n, k) {
		return n + Number(drops[k]);
	}, 0);

	return reasons.length
		? '%d (%s)'.format(
				total,
				reasons
					.map(function (k) {
						return k + ' ' + drops[k];
					})
					.join(', ')
			)
		: '0';
}

/* An SVG element (E() makes HTML ones). */
function svg(tag, attrs, children) {
	const node = document.createElementNS(SVG_NS, tag);

	for (const k in attrs) node.setAttribute(k, String(attrs[k]));

	(children || []).forEach(function (c) {
		node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
	});

	return node;
}

/* Byte totals of every connection and flow so far: `traffic` (live ones
 * included); an older gateway has only `bytes` (closed connections). */
function byteTotals(st) {
	const b = st && (st.traffic || st.bytes);

	return b && typeof b === 'object' ? { up: Number(b.up) || 0, down: Number(b.down) || 0 } : null;
}

/* Bytes/s between consecutive samples {ms, up, down}; a total that went
 * back (a restarted gateway) counts as 0, not as a negative rate. */
function rates(samples) {
	const out = [];

	for (let i = 1; i < samples.length; i++) {
		const a = samples[i - 1],
			b = samples[i],
			s = Math.max(0.001, (b.ms - a.ms) / 1000);

		out.push({ up: Math.max(0, b.up - a.up) / s, down: Math.max(0, b.down - a.down) / s });
	}

	return out;
}

/* Up and down bytes/s as two polylines, newest on the right, scaled to the largest rate shown. */
function throughputGraph(samples) {
	const r = rates(samples);
	const max = r.reduce(function (m, x) {
		return Math.max(m, x.up, x.down);
	}, 1024);
	const step = GRAPH_W / (GRAPH_POINTS - 1);
	const line = function (key, color) {
		const points = r.map(function (x, i) {
			const px = GRAPH_W - (r.length - 1 - i) * step,
				py = GRAPH_H - (x[key] / max) * (GRAPH_H - 10);

			return px.toFixed(1) + ',' + py.toFixed(1);
		});

		return svg('polyline', {
			class: 'ugate-' + key,
			fill: 'none',
			stroke: color,
			'stroke-width': 2,
			points: points.join(' ')
		});
	};
	const grid = [0.25, 0.5, 0.75].map(function (f) {
		return svg('line', {
			x1: 0,
			x2: GRAPH_W,
			y1: GRAPH_H - f * (GRAPH_H - 10),
			y2: GRAPH_H - f * (GRAPH_H - 10),
			stroke: '#ccc',
			'stroke-dasharray': '4 4'
		});
	});
	const last = r.length ? r[r.length - 1] : { up: 0, down: 0 };

	return E('div', {}, [
		svg(
			'svg',
			{
				class: 'ugate-graph',
				viewBox: '0 0 %d %d'.format(GRAPH_W, GRAPH_H),
				width: '100%',
				height: GRAPH_H,
				preserveAspectRatio: 'none',
				role: 'img'
			},
			[
				svg('title', {}, [_('Throughput, last 5 minutes')]),
				svg('rect', { x: 0, y: 0, width: GRAPH_W, height: GRAPH_H, fill: 'none', stroke: '#999' })
			]
				.concat(grid)
				.concat([line('up', '#2a7'), line('down', '#27c')])
		),
		E('div', { class: 'ugate-graph-legend' }, [
			E('span', { style: 'color:#2a7' }, _('Up %s/s').format(formatBytes(last.up))),
			' \u00a0 ',
			E('span', { style: 'color:#27c' }, _('Down %s/s').format(formatBytes(last.down))),
			' \u00a0 ',
			E('em', {}, r.length ? _('peak %s/s').format(formatBytes(max)) : _('waiting for a second sample'))
		])
	]);
}

function keyValueTable(pairs) {
	return E(
		'table',
		{ class: 'table' },
		pairs.map(function (p) {
			return E('tr', { class: 'tr' }, [
				E('td', { class: 'td left', width: '33%' }, p[0]),
				E('td', { class: 'td left' }, p[1] == null ? '-' : p[1])
			]);
		})
	);
}

return view.extend({
	/* uhttpd answers a missing plugin or a call the ACL denies with a JSON-RPC
	 * error, which rpc.js turns into a rejection: show "no answer" instead. */
	load() {
		const none = function () {
			return {};
		};
		return Promise.all([callServiceList('ugate').catch(none), callStatus().catch(none), callConnections().catch(none)]);
	},

	/* Fill the page's boxes from [ service list, status, connections ]. */
	update(nodes, data) {
		const service = serviceInstance(data[0]),
			st = data[1] || {},
			conns = data[2] && Array.isArray(data[2].connections) ? data[2].connections : [],
			/* absent before UDP (older gateway) and without a tproxy listener */
			flows = data[2] && Array.isArray(data[2].udpFlows) ? data[2].udpFlows : null;
		const running = st.running === true;

		let state;

		if (running) state = E('span', { style: 'color:green' }, _('Running'));
		else if (service)
			state = E('span', { style: 'color:orange' }, _('Started by procd, not answering on its admin socket'));
		else state = E('span', { style: 'color:red' }, _('Not running'));

		const pairs = [
			[_('Service'), state],
			[_('Process'), service ? 'PID %d'.format(service.pid) : running && st.pid ? 'PID %d'.format(st.pid) : null]
		];

		if (running) {
			pairs.push(
				[_('Version'), st.version],
				[_('Uptime'), formatDuration(st.uptime)],
				[_('Live connections'), st.connections ? String(st.connections.live) : null],
				[_('Connections since start'), st.connections ? String(st.connections.total) : null],
				[_('Bytes up (client to server)'), st.bytes ? formatBytes(st.bytes.up) : null],
				[_('Bytes down (server to client)'), st.bytes ? formatBytes(st.bytes.down) : null]
			);

			if (st.capture)
				pairs.push([
					_('Transparent capture'),
					st.capture.enabled
						? _('on, to listener "%s"').format(st.capture.listener) +
							(st.capture.udp ? _('; UDP to listener "%s"').format(st.capture.udpListener) : '')
						: _('off')
				]);

			/* UDP counters (native udpStats): absent on a gateway without UDP */
			const u = st.udp;

			if (u && typeof u === 'object')
				pairs.push(
					[_('UDP flows'), _('%d live, %d since start').format(u.flowsLive || 0, u.flowsTotal || 0)],
					[_('UDP datagrams'), _('%d up, %d down').format(u.packetsUp || 0, u.packetsDown || 0)],
					[_('UDP bytes'), _('%s up, %s down').format(formatBytes(u.bytesUp), formatBytes(u.bytesDown))],
					[_('UDP datagrams dropped'), formatDrops(u.drops)]
				);

			if (st.dns && typeof st.dns === 'object' && st.dns.names != null)
				pairs.push([_('Names learnt from DNS'), String(st.dns.names)]);
		} else if (st.error) {
			pairs.push([_('Admin socket'), String(st.error)]);
		} else if (Object.keys(st).length === 0) {
			pairs.push([_('ubus'), _('No answer from the ubus object ugate (not running, or option ubus_socket is empty)')]);
		}

		dom.content(nodes.overview, keyValueTable(pairs));

		const listeners = running && Array.isArray(st.listeners) ? st.listeners : [];

		dom.content(
			nodes.listeners,
			table(
				[_('Name'), _('Type'), _('Address')],
				listeners.map(function (l) {
					return [l.name, l.type, l.addr];
				}),
				_('No listeners')
			)
		);

		const rules = running && Array.isArray(st.rules) ? st.rules.slice() : [];

		rules.sort(function (a, b) {
			return (b.hits || 0) - (a.hits || 0);
		});

		dom.content(
			nodes.rules,
			table(
				[_('Rule'), _('Hits')],
				rules.map(function (r) {
					return [r.rule, r.hits];
				}),
				_('No rule has matched yet')
			)
		);

		const dnsListeners = running && st.dns && Array.isArray(st.dns.listeners) ? st.dns.listeners : [];

		dom.content(
			nodes.dns,
			table(
				[
					_('Listener'),
					_('Queries'),
					_('Cached'),
					_('From rules/hosts'),
					_('Forwarded'),
					_('Failed'),
					_('Malformed'),
					_('Dropped')
				],
				dnsListeners.map(function (d) {
					/* `local` is absent on an older gateway: shown as "-" */
					return [d.name, d.queries, d.cached, d.local, d.forwarded, d.failed, d.malformed, d.dropped];
				}),
				_('No DNS listener')
			)
		);

		const flowRows = (flows || []).slice(0, MAX_ROWS).map(function (f) {
			return [
				f.listener,
				f.src,
				f.dst,
				f.action,
				f.ms != null ? formatDuration(f.ms / 1000) : null,
				f.idleMs != null ? formatDuration(f.idleMs / 1000) : null,
				f.up != null ? formatBytes(f.up) : null,
				f.down != null ? formatBytes(f.down) : null
			];
		});

		dom.content(nodes.udpFlows, [
			table(
				[_('Listener'), _('Client'), _('Destination'), _('Action'), _('Age'), _('Idle'), _('Up'), _('Down')],
				flowRows,
				!running ? _('Not running') : flows ? _('No live UDP flows') : _('No tproxy listener')
			),
			flows && flows.length > MAX_ROWS
				? E('p', {}, _('%d more UDP flows not shown').format(flows.length - MAX_ROWS))
				: ''
		]);

		/* HBONE tunnels (mesh connections): absent on a gateway without the mesh */
		const tunnels = running && Array.isArray(st.hbone) ? st.hbone : [];

		dom.content(
			nodes.mesh,
			table(
				[
					_('Role'),
					_('Upstream / listener'),
					_('Peer'),
					_('Identity'),
					_('State'),
					_('Streams (live / total)'),
					_('Sent'),
					_('Received'),
					_('RTT')
				],
				tunnels.map(function (x) {
					return [
						/* as `ugate ctl status`: a reverse tunnel's roles are swapped (docs/mesh.md) */
						x.reverse === true ? '%s reverse'.format(x.role) : x.role,
						x.pool || x.listener || null,
						x.peer,
						x.peerId || null,
						x.state,
						'%d / %d'.format(x.streams || 0, x.streamsTotal || 0),
						formatBytes(x.bytesOut),
						formatBytes(x.bytesIn),
						x.rttMs != null ? '%s ms'.format(x.rttMs) : null
					];
				}),
				running ? _('No mesh tunnels') : _('Not running')
			)
		);

		/*
		 * Reverse tunnels: gates behind NAT registered at this (public) gate, and
		 * this gate's own links to its public gates. Absent on an older gateway.
		 */
		const rev = running && st.reverse ? st.reverse : {},
			registered = Array.isArray(rev.registered) ? rev.registered : [],
			links = Array.isArray(rev.links) ? rev.links : [];

		dom.content(
			nodes.reverse,
			table(
				[_('Side'), _('Entry / listener'), _('Address'), _('Identity'), _('Node'), _('State'), _('Failures'), _('For')],
				registered
					.map(function (x) {
						return [
							_('registered here'),
							x.listener,
							x.peer,
							x.identity,
							x.node || null,
							_('up'),
							null,
							formatDuration(x.ageMs / 1000)
						];
					})
					.concat(
						links.map(function (x) {
							return [
								_('to a public gate'),
								x.name,
								x.relay,
								x.peerId || null,
								null,
								x.state,
								x.failures,
								x.state === 'up' ? formatDuration(x.upMs / 1000) : null
							];
						})
					),
				running ? _('No reverse tunnels') : _('Not running')
			)
		);

		const rows = conns.slice(0, MAX_ROWS).map(function (c) {
			return [
				c.listener,
				c.src,
				c.dst || c.host || null,
				c.stage,
				c.ms != null ? formatDuration(c.ms / 1000) : null,
				c.up != null ? formatBytes(c.up) : null,
				c.down != null ? formatBytes(c.down) : null
			];
		});

		dom.content(nodes.connections, [
			table(
				[_('Listener'), _('Client'), _('Destination'), _('Stage'), _('Age'), _('Up'), _('Down')],
				rows,
				running ? _('No live connections') : _('Not running')
			),
			conns.length > MAX_ROWS ? E('p', {}, _('%d more connections not shown').format(conns.length - MAX_ROWS)) : ''
		]);
	},

	/* One sample of the byte totals, the graph redrawn. */
	sample(node, st) {
		const b = byteTotals(st);

		if (b) {
			this.samples.push({ ms: Date.now(), up: b.up, down: b.down });
			this.samples.splice(0, Math.max(0, this.samples.length - GRAPH_POINTS));
		}

		dom.content(node, throughputGraph(this.samples));
	},

	render(data) {
		const nodes = {
			graph: E('div'),
			overview: E('div'),
			listeners: E('div'),
			rules: E('div'),
			connections: E('div'),
			dns: E('div'),
			udpFlows: E('div'),
			mesh: E('div'),
			reverse: E('div')
		};

		this.samples = [];
		this.update(nodes, data);
		this.sample(nodes.graph, data[1]);

		poll.add(
			L.bind(function () {
				return this.load().then(L.bind(this.update, this, nodes));
			}, this),
			5
		);

		poll.add(
			L.bind(function () {
				return callStatus()
					.catch(function () {
						return {};
					})
					.then(L.bind(this.sample, this, nodes.graph));
			}, this),
			GRAPH_POLL
		);

		/* not a .cbi-map: nothing here to save, and the footer stays away */
		return E('div', {}, [
			E('h2', {}, _('ugate status')),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Service')), nodes.overview]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Throughput')), nodes.graph]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Listeners')), nodes.listeners]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Rule hits')), nodes.rules]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Live connections')), nodes.connections]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('UDP flows')), nodes.udpFlows]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Mesh tunnels')), nodes.mesh]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('Reverse tunnels')), nodes.reverse]),
			E('div', { class: 'cbi-section' }, [E('h3', {}, _('DNS')), nodes.dns])
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
