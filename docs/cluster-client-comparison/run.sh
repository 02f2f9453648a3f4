#!/usr/bin/env bash
# run.sh CLIENT FAULT RUN  -> logs/CLIENT-FAULT-RUN.log and a summary line in results.tsv
#   CLIENT: r18 | r20 | fredc | fredu (fredc with fred's unresponsive-connection detector) | store
#   FAULT:  reshard (2000 slots) | rebalance (after an unloaded 2000-slot reshard) |
#           failover (SIGKILL of a master) | clientkill (CLIENT KILL TYPE normal on every node)
# A fresh 3-master + 3-replica cluster per run (cluster.sh), the fault AT seconds into a
# SECS-second run of the client, every step under `timeout`.
set -u
client=$1; fault=$2; run=$3
bin=$client; [ "$client" = fredu ] && { bin=fredc; export FRED_UNRESPONSIVE=1; }
BASE=${BASE:-7400}; SECS=${SECS:-40}; AT=${AT:-8}
dir=/tmp/rs-cluster-$BASE
mkdir -p logs; log=logs/$client-$fault-$run.log
./cluster.sh stop $BASE >/dev/null 2>&1
./cluster.sh start $BASE >/dev/null || { echo "cluster start failed"; exit 1; }
masters() { redis-cli -p $BASE cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && NF>=9 {print $1}'; }
FROM=$(masters | sed -n 1p); TO=$(masters | sed -n 2p)
if [ "$fault" = rebalance ]; then
  redis-cli --cluster reshard 127.0.0.1:$BASE --cluster-from $FROM --cluster-to $TO --cluster-slots 2000 --cluster-yes >/dev/null 2>&1
  sleep 1
fi
BASE=$BASE timeout $((SECS+20)) ./target/release/$bin $SECS > $log 2>&1 &
cpid=$!
sleep $AT
t0=$(date +%s.%N)
case $fault in
  reshard) timeout 120 redis-cli --cluster reshard 127.0.0.1:$BASE --cluster-from $FROM --cluster-to $TO --cluster-slots 2000 --cluster-yes > logs/$client-$fault-$run.fault 2>&1 ;;
  rebalance) timeout 120 redis-cli --cluster rebalance 127.0.0.1:$BASE > logs/$client-$fault-$run.fault 2>&1 ;;
  failover) kill -9 $(cat $dir/$BASE/redis.pid) ;;
  clientkill) for i in 0 1 2 3 4 5; do redis-cli -p $((BASE+i)) CLIENT KILL TYPE normal; done > logs/$client-$fault-$run.fault 2>&1 ;;
esac
t1=$(date +%s.%N)
wait $cpid; rc=$?
./cluster.sh stop $BASE >/dev/null 2>&1
printf '%s\t%s\t%s\tfault_s=%.1f\trc=%s\n' "$client" "$fault" "$run" "$(echo "$t1 - $t0" | bc)" "$rc" | tee -a results.tsv
