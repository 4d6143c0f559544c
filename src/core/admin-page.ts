// The admin server's own live page (GET /): one self-contained HTML file,
// no framework, no external requests. It asks for the admin secret (or
// takes #token=… from the address), then reads the same API the dashboards
// read: /connections and /traffic over WebSocket, /rules and /ugate/status
// (listeners, capture, mesh tunnels).

export const ADMIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ugate</title><link rel="icon" href="data:,">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#234;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header b{font-size:16px}main{padding:12px 16px;display:grid;gap:12px}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 12px}
h2{font-size:14px;margin:4px 0 8px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;white-space:nowrap}
th{cursor:pointer;user-select:none;background:#f0f2f5}td.n,th.n{text-align:right}
button{cursor:pointer}#err{color:#b00}svg{width:100%;height:120px;background:#fbfcfd}
.cols{display:grid;grid-template-columns:1fr 1fr 1fr;gap:12px}
</style></head><body>
<header><b>ugate</b><span id="ver"></span><span id="rate"></span><span id="err"></span></header>
<main>
<form id="login" hidden><label>Admin secret <input id="secret" type="password" autocomplete="current-password"></label> <button>Connect</button></form>
<section><h2>Throughput (last 5 minutes)</h2><svg id="graph" viewBox="0 0 300 100" preserveAspectRatio="none">
<polyline id="gup" fill="none" stroke="#d60" stroke-width="1"/><polyline id="gdown" fill="none" stroke="#06c" stroke-width="1"/></svg>
<div><span style="color:#d60">up</span> / <span style="color:#06c">down</span>, peak <span id="peak">0 B/s</span></div></section>
<section><h2>Live connections (<span id="count">0</span>)</h2><table id="conns"><thead><tr>
<th data-k="id" class="n">ID</th><th data-k="network">Net</th><th data-k="type">Type</th><th data-k="src">Source</th><th data-k="dst">Destination</th><th data-k="host">Host</th><th data-k="rule">Rule</th><th data-k="chain">Via</th><th data-k="up" class="n">Up</th><th data-k="down" class="n">Down</th><th data-k="start">Since</th><th></th></tr></thead><tbody></tbody></table></section>
<div class="cols">
<section><h2>Top destinations</h2><table id="top"><thead><tr><th>Destination</th><th class="n">Conns</th><th class="n">Bytes</th></tr></thead><tbody></tbody></table></section>
<section><h2>Rule hits</h2><table id="rules"><thead><tr><th>Rule</th><th>Proxy</th><th class="n">Hits</th></tr></thead><tbody></tbody></table></section>
<section><h2>Listeners and capture</h2><table id="listeners"><thead><tr><th>Name</th><th>Type</th><th>Address</th></tr></thead><tbody></tbody></table><p id="capture"></p></section>
</div>
<section><h2>Mesh tunnels (<span id="tcount">0</span>)</h2><table id="mesh"><thead><tr><th>Role</th><th>Upstream / listener</th><th>Peer</th><th>Identity</th><th>State</th><th class="n">Streams (live / total)</th><th class="n">Sent</th><th class="n">Received</th><th class="n">RTT</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const $=(id)=>document.getElementById(id);
let token=new URLSearchParams(location.hash.slice(1)).get("token")||sessionStorage.getItem("ugate-token")||"";
let rows=[],sortKey="id",sortDir=-1,samples=[],sockets=[],timer=0;
const seen=new Map();
function human(n){const u=["B","KiB","MiB","GiB","TiB"];let i=0;while(n>=1024&&i<4){n/=1024;i++}return(i?n.toFixed(1):String(n))+" "+u[i]}
function cell(tr,text,cls){const td=document.createElement("td");td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);return td}
function fill(id,list,make){const tb=$(id).tBodies[0];tb.textContent="";for(const x of list){const tr=document.createElement("tr");make(tr,x);tb.appendChild(tr)}}
async function api(path,opts){const r=await fetch(path,{...opts,headers:{Authorization:"Bearer "+token}});
if(r.status===401){showLogin("wrong secret");throw new Error("unauthorized")}
if(!r.ok)throw new Error(path+": "+r.status);return r.status===204?null:r.json()}
function ws(path,on){const s=new WebSocket((location.protocol==="https:"?"wss://":"ws://")+location.host+path+(path.includes("?")?"&":"?")+"token="+encodeURIComponent(token));
s.onmessage=(e)=>on(JSON.parse(e.data));s.onclose=()=>{if(sockets.includes(s))$("err").textContent="connection to ugate lost"};sockets.push(s)}
function showLogin(msg){$("login").hidden=false;$("err").textContent=msg||""}
function render(){const k=sortKey;rows.sort((a,b)=>(a[k]<b[k]?-1:a[k]>b[k]?1:0)*sortDir);
$("count").textContent=String(rows.length);
fill("conns",rows,(tr,c)=>{tr.dataset.id=c.id;cell(tr,c.id,"n");cell(tr,c.network);cell(tr,c.type);cell(tr,c.src);cell(tr,c.dst);cell(tr,c.host);cell(tr,c.rule);cell(tr,c.chain);
cell(tr,human(c.up),"n");cell(tr,human(c.down),"n");cell(tr,new Date(c.start).toLocaleTimeString());
const b=document.createElement("button");b.textContent="Close";b.onclick=()=>api("/connections/"+encodeURIComponent(c.id),{method:"DELETE"}).catch((e)=>$("err").textContent=String(e));cell(tr,"").appendChild(b)});
const top=new Map();for(const c of rows){const t=top.get(c.dest)||{n:0,b:0};t.n++;t.b+=c.up+c.down;top.set(c.dest,t)}
fill("top",[...top].sort((a,b)=>b[1].b-a[1].b).slice(0,10),(tr,[d,t])=>{cell(tr,d);cell(tr,String(t.n),"n");cell(tr,human(t.b),"n")})}
function onConns(m){rows=m.connections.map((c)=>{const md=c.metadata;const ip=md.destinationIP.includes(":")?"["+md.destinationIP+"]":md.destinationIP;
const dst=(md.host||ip)+":"+md.destinationPort;return{id:Number(c.id),network:md.network,type:md.type,src:md.sourceIP+":"+md.sourcePort,dst,dest:md.host||md.destinationIP||"-",
host:md.sniffHost||md.host||"",rule:c.rulePayload?c.rule+"("+c.rulePayload+")":c.rule,chain:c.chains.join(" / "),up:c.upload,down:c.download,start:c.start}});render()}
function onTraffic(m){samples.push(m);if(samples.length>300)samples.shift();$("rate").textContent="up "+human(m.up)+"/s, down "+human(m.down)+"/s";
const peak=Math.max(1,...samples.map((s)=>Math.max(s.up,s.down)));$("peak").textContent=human(peak)+"/s";
const pts=(k)=>samples.map((s,i)=>(300-samples.length+i+1)+","+(100-s[k]/peak*95).toFixed(1)).join(" ");
$("gup").setAttribute("points",pts("up"));$("gdown").setAttribute("points",pts("down"))}
async function slow(){const [r,s]=await Promise.all([api("/rules"),api("/ugate/status")]);
fill("rules",r.rules,(tr,x)=>{cell(tr,x.payload?x.type+","+x.payload:x.type);cell(tr,x.proxy);cell(tr,String(x.extra.hitCount),"n")});
fill("listeners",s.listeners,(tr,l)=>{cell(tr,l.name);cell(tr,l.type);cell(tr,l.addr)});
$("capture").textContent="Transparent capture: "+(s.capture.enabled?"on, into listener "+s.capture.listener:"off");
const tun=s.hbone||[];$("tcount").textContent=String(tun.length);
fill("mesh",tun,(tr,x)=>{cell(tr,x.role);cell(tr,x.pool||x.listener||"");cell(tr,x.peer);cell(tr,x.peerId||"-");cell(tr,x.state);
cell(tr,x.streams+" / "+x.streamsTotal,"n");cell(tr,human(x.bytesOut),"n");cell(tr,human(x.bytesIn),"n");cell(tr,x.rttMs==null?"-":x.rttMs+" ms","n")})}
async function start(){for(const s of sockets.splice(0))s.close();clearInterval(timer);
try{const v=await api("/version");$("ver").textContent=v.version;$("login").hidden=true;$("err").textContent="";
sessionStorage.setItem("ugate-token",token);ws("/connections",onConns);ws("/traffic",onTraffic);await slow();timer=setInterval(()=>slow().catch(()=>{}),5000)}catch(e){if(String(e).indexOf("unauthorized")<0)$("err").textContent=String(e)}}
for(const th of document.querySelectorAll("#conns th[data-k]"))th.onclick=()=>{const k=th.dataset.k;sortDir=sortKey===k?-sortDir:1;sortKey=k;render()};
$("login").onsubmit=(e)=>{e.preventDefault();token=$("secret").value;start()};
start();
</script></body></html>
`
