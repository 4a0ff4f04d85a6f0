#!/usr/bin/env python3
# Per-script Redis CPU per job at a given batch size: claim.lua and finish.lua called
# directly (EVALSHA) on jobs enqueued with `baton add-bulk`, measured from INFO
# commandstats: each script's time per job, the commands inside it, and the rest (Lua,
# reply building, AOF propagation). Needs `pip install redis`.
# Usage: BATON=target/release/baton bench/script_profile.py PORT BATCH JOBS [KEEP]
#   (a running redis-server on PORT; KEEP is the completed retention, default none)
import redis, subprocess, sys, time, os, json
port=int(sys.argv[1]); batch=int(sys.argv[2]); jobs=int(sys.argv[3]); keep=sys.argv[4] if len(sys.argv)>4 else 'none'
r=redis.Redis(port=port)
lua=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lua') + '/'
common=open(lua+'common.lua').read()
def load(name):
    t=open(lua+name).read(); first,body=t.split('\n',1)
    return r.script_load(first+'\n'+common+'\n'+body)
claim=load('claim.lua'); fin=load('finish.lua')
q='prof'; p='baton:{%s}:'%q
K=lambda s:p+s
# enqueue with the CLI (the real add path)
lines='\n'.join(json.dumps({"name":"n","data":i,"keep_completed":keep}) for i in range(jobs))
subprocess.run([os.environ.get('BATON', 'target/release/baton'),'--redis-url',f'redis://127.0.0.1:{port}','add-bulk',q,'-'],input=lines.encode(),check=True,stdout=subprocess.DEVNULL)
def stats():
    d=r.info('commandstats'); return {k:(v['calls'],v['usec']) for k,v in d.items()}
r.config_resetstat()
claimed=[]
t0=stats()
while True:
    out=r.evalsha(claim,7,K('wait'),K('prioritized'),K('delayed'),K('active'),K('meta'),K('wake'),K('failed'),p,batch,'w1',30000)
    n=(len(out)-2)//8
    if n==0: break
    for i in range(n):
        b=2+i*8; claimed.append((out[b].decode(),out[b+1]))
t1=stats()
for i in range(0,len(claimed),batch):
    chunk=claimed[i:i+batch]; args=[p,len(chunk)]
    for id,tok in chunk: args+= [id,tok,'c','\x90',0]
    r.evalsha(fin,9,K('active'),K('wait'),K('prioritized'),K('delayed'),K('completed'),K('failed'),K('cancelled'),K('meta'),K('wake'),*args)
t2=stats()
def show(a,b,label):
    tot=0; rows=[]
    for k,(c,u) in b.items():
        c0,u0=a.get(k,(0,0))
        if c-c0: rows.append((u-u0,k,c-c0))
    rows.sort(reverse=True)
    ev=[x for x in rows if x[1]=='cmdstat_evalsha'][0]
    inner=sum(x[0] for x in rows if x[1] not in('cmdstat_evalsha','cmdstat_info','cmdstat_config|resetstat'))
    print(f"{label}: evalsha {ev[0]/len(claimed):.2f} us/job over {ev[2]} calls; inner commands {inner/len(claimed):.2f} us/job; Lua+call overhead {(ev[0]-inner)/len(claimed):.2f} us/job")
    for u,k,c in rows[:8]: print(f"   {k} {c} calls {u/len(claimed):.2f} us/job")
show(t0,t1,f'claim (batch {batch})'); show(t1,t2,f'finish complete (batch {batch}, keep {keep})')
