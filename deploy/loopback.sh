#!/usr/bin/env bash
# loopback.sh runs the topology of docker-compose.yml on 127.0.0.1 without Docker: a private
# redis-server, three chatd processes sharing it, and Debian's nginx with
# deploy/nginx/nginx.conf rewritten to their ports (same upstream, stickiness and WebSocket
# settings). Every port is a free one; nothing needs root.
#
#   deploy/loopback.sh start DIR [--chatd BIN] [--instances N] [--print-env]
#       Starts everything with its files in DIR (created if missing) and returns once Redis
#       answers PING, every chatd answers 200 on /readyz, and nginx proxies /readyz. Writes
#       DIR/env (KEY=value lines, lists comma-separated, no quoting needed):
#         LB_URL LB_PORT REDIS_URL REDIS_PORT REDIS_PID CHATD_URLS CHATD_PORTS CHATD_PIDS
#         CHATD_INSTANCE_IDS NGINX_PID LOG_DIR
#       Without --chatd, builds ./cmd/chatd into DIR/chatd with `go build`.
#       CHATD_* variables of the caller reach chatd (CHATD_LISTEN, CHATD_REDIS_URL and
#       CHATD_INSTANCE_ID are set per instance). Exits non-zero, after stopping what it
#       started, if anything fails to come up; logs are in DIR/logs.
#   deploy/loopback.sh restart DIR I
#       Rolling-restart step for instance I (1..N, chatdI): SIGTERM it, wait for it to exit
#       (SIGKILL after LOOPBACK_STOP_TIMEOUT seconds), start it again on the same port with the
#       same binary and CHATD_* environment as `start` had, and return once /readyz is 200.
#       Updates CHATD_PIDS in DIR/env. Prints the old exit status; exits 1 if it was not 0
#       (the new instance runs anyway). Every chatd runs under a small supervisor shell that
#       writes its exit status to DIR/chatdI.exit. Run one restart at a time per DIR.
#   deploy/loopback.sh stop DIR
#       SIGTERM to nginx and chatd (waiting for their drain), then Redis; SIGKILL after
#       LOOPBACK_STOP_TIMEOUT seconds (default 40). Safe to run twice.
#   deploy/loopback.sh run [--chatd BIN] [--instances N]
#       start in a temporary directory, print the env, wait for Ctrl-C or SIGTERM, stop.
#   deploy/loopback.sh nginx-conf OUT LB_PORT CHATD_PORT...
#       Only writes the rewritten nginx.conf (used by the Go tests).
#
# LOOPBACK_TIMEOUT (seconds, default 30) bounds the wait for each process to become ready.
# Needs bash, redis-server, nginx (/usr/sbin/nginx or on PATH) and, without --chatd, go.

set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)
nginx_src="$script_dir/nginx/nginx.conf"
ready_timeout=${LOOPBACK_TIMEOUT:-30}
stop_timeout=${LOOPBACK_STOP_TIMEOUT:-40}

die() {
	echo "loopback.sh: $*" >&2
	exit 1
}

usage() {
	echo "Usage:" >&2
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# is_uint VALUE: true when VALUE is a non-negative decimal integer.
is_uint() {
	[[ $1 =~ ^[0-9]+$ ]]
}

# port_in_use PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: sets port to a port below the kernel's ephemeral range (so no outgoing
# connection takes it meanwhile) that nothing listens on and that this run has not handed out.
taken_ports=" "
port=""
free_port() {
	local lo=10000 hi=32767 eph_lo p i
	if read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && ((eph_lo > lo + 1000)); then
		hi=$((eph_lo - 1))
	fi
	for ((i = 0; i < 200; i++)); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		[[ $taken_ports == *" $p "* ]] && continue
		port_in_use "$p" && continue
		taken_ports+="$p "
		port=$p
		return 0
	done
	die "no free port found between $lo and $hi"
}

# http_status PORT PATH: prints the HTTP status code of GET http://127.0.0.1:PORT/PATH, or
# 000 when nothing answers within 2 seconds.
http_status() {
	local line
	line=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
		IFS= read -r -t 2 line <&3 && echo "$line"
	) || true
	if [[ $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
		echo "${BASH_REMATCH[1]}"
	else
		echo 000
	fi
}

# redis_pong PORT: true when the Redis on PORT answers PING.
redis_pong() {
	local line
	line=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
		printf 'PING\r\n' >&3
		IFS= read -r -t 2 line <&3 && echo "$line"
	) || true
	[[ $line == +PONG* ]]
}

# wait_ready NAME PID LOG CHECK...: runs CHECK every 0.1 s until it succeeds; fails when PID
# exits first or after ready_timeout seconds, showing the end of LOG.
wait_ready() {
	local name=$1 pid=$2 log=$3
	shift 3
	local deadline=$((SECONDS + ready_timeout))
	until "$@"; do
		if ! alive "$pid"; then
			echo "loopback.sh: $name (pid $pid) exited before it was ready; end of $log:" >&2
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "loopback.sh: $name (pid $pid) not ready after ${ready_timeout}s; end of $log:" >&2
			tail -n 20 "$log" >&2 || true
			return 1
		fi
		sleep 0.1
	done
}

status_is() { # status_is PORT PATH CODE
	[[ $(http_status "$1" "$2") == "$3" ]]
}

# render_nginx OUT LB_PORT PORT...: writes nginx.conf with `listen 80;` replaced by the
# loopback LB port, the chatdN upstream servers replaced by one loopback server per PORT
# (same parameters, without `resolve`, which needs DNS), and temp paths under OUT's folder
# so that nginx runs without root.
render_nginx() {
	local out=$1 lb_port=$2
	shift 2
	(($# > 0)) || die "nginx-conf: no chatd ports given"
	is_uint "$lb_port" || die "nginx-conf: LB port '$lb_port' is not a number"
	local p
	for p in "$@"; do
		is_uint "$p" || die "nginx-conf: chatd port '$p' is not a number"
	done
	[[ -r $nginx_src ]] || die "cannot read $nginx_src"
	local tmp_dir
	tmp_dir="$(cd "$(dirname "$out")" && pwd)/tmp"
	mkdir -p "$tmp_dir"
	awk -v lb_port="$lb_port" -v ports="$*" -v tmp="$tmp_dir" '
		BEGIN { n = split(ports, port, " "); servers = 0; listens = 0 }
		/^[ \t]*http[ \t]*\{/ {
			print
			print "    # loopback.sh: temp files under the run folder, so no root is needed."
			split("client_body proxy fastcgi uwsgi scgi", kind, " ")
			for (k = 1; k <= 5; k++) printf "    %s_temp_path %s/%s;\n", kind[k], tmp, kind[k]
			next
		}
		/^[ \t]*listen[ \t]+80;/ {
			match($0, /^[ \t]*/)
			printf "%slisten 127.0.0.1:%s;\n", substr($0, 1, RLENGTH), lb_port
			listens++
			next
		}
		/^[ \t]*server[ \t]+chatd[0-9]+:[0-9]+/ {
			if (servers++ > 0) next
			match($0, /^[ \t]*/)
			indent = substr($0, 1, RLENGTH)
			params = ""
			for (f = 3; f <= NF; f++) {
				w = $f
				sub(/;$/, "", w)
				if (w != "resolve" && w != "") params = params " " w
			}
			for (i = 1; i <= n; i++) printf "%sserver 127.0.0.1:%s%s;\n", indent, port[i], params
			next
		}
		{ print }
		END {
			if (listens != 1) { print "loopback.sh: expected one `listen 80;` line in nginx.conf, found " listens > "/dev/stderr"; exit 1 }
			if (servers == 0) { print "loopback.sh: no `server chatdN:PORT` line in nginx.conf" > "/dev/stderr"; exit 1 }
		}
	' "$nginx_src" >"$out.tmp" || {
		rm -f "$out.tmp"
		exit 1
	}
	mv "$out.tmp" "$out"
}

find_nginx() {
	if [[ -x /usr/sbin/nginx ]]; then
		echo /usr/sbin/nginx
	elif command -v nginx >/dev/null; then
		command -v nginx
	else
		die "nginx not found (apt-get install nginx)"
	fi
}

# alive PID: true while PID runs (a zombie that nobody reaped yet counts as gone).
alive() {
	local stat
	{ IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# pid_matches PID WORD: true when PID is alive and its command line contains WORD, so that a
# stale pid file never makes us signal an unrelated process.
pid_matches() {
	local pid=$1 word=$2 cmdline
	is_uint "$pid" && alive "$pid" || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmdline == *"$word"* ]]
}

# stop_kind PIDS_FILE KIND TIMEOUT [SIGNAL]: send SIGNAL (default TERM; "none" sends nothing)
# to every process of KIND ("KIND PID WORD" lines of PIDS_FILE), wait up to TIMEOUT seconds for
# all of them to exit, then SIGKILL the rest.
stop_kind() {
	local file=$1 kind=$2 timeout=$3 sig=${4:-TERM} k pid word
	local -a pids=()
	while read -r k pid word; do
		[[ $k == "$kind" ]] || continue
		if pid_matches "$pid" "$word"; then
			[[ $sig == none ]] || kill -"$sig" "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done <"$file"
	((${#pids[@]} > 0)) || return 0
	local deadline=$((SECONDS + timeout))
	local -a running
	while :; do
		running=()
		for pid in "${pids[@]}"; do
			alive "$pid" && running+=("$pid")
		done
		((${#running[@]} == 0)) && return 0
		if ((SECONDS >= deadline)); then
			echo "loopback.sh: killing ${running[*]} after ${timeout}s" >&2
			kill -KILL "${running[@]}" 2>/dev/null || true
			return 0
		fi
		sleep 0.1
	done
}

# cmd_stop DIR: stops what `start DIR` recorded in DIR/pids.
cmd_stop() {
	local dir=$1
	[[ -d $dir ]] || die "stop: no such folder: $dir"
	local pids_file="$dir/pids"
	[[ -f $pids_file ]] || return 0
	# Front to back: the load balancer, then chatd (which drains and may still need Redis),
	# then Redis.
	stop_kind "$pids_file" nginx 10
	stop_kind "$pids_file" chatd "$stop_timeout"
	# The supervisors end by themselves once their chatd has exited.
	stop_kind "$pids_file" supervisor 5 none
	stop_kind "$pids_file" redis 10
	rm -f "$pids_file"
	# Reap them when this shell started them (run, or a failed start).
	wait 2>/dev/null || true
}

# record KIND PID WORD: appends to DIR/pids for stop.
record() {
	echo "$1 $2 $3" >>"$run_dir/pids"
}

# launch_chatd I PORT: starts instance I (chatdI) of $chatd_bin on PORT with $redis_url, its
# output appended to its log, under a supervisor subshell that waits for it and writes its
# exit status to $run_dir/chatdI.exit. Records both and sets pid to chatd's process id.
launch_chatd() {
	local i=$1 p=$2 id="chatd$1" super n
	rm -f "$run_dir/$id.pid" "$run_dir/$id.exit"
	(
		CHATD_LISTEN="127.0.0.1:$p" CHATD_REDIS_URL="$redis_url" CHATD_INSTANCE_ID="$id" \
			"$chatd_bin" </dev/null &
		child=$!
		echo "$child" >"$run_dir/$id.pid.tmp"
		mv "$run_dir/$id.pid.tmp" "$run_dir/$id.pid"
		status=0
		wait "$child" || status=$?
		echo "$status" >"$run_dir/$id.exit.tmp"
		mv "$run_dir/$id.exit.tmp" "$run_dir/$id.exit"
		# Not mv as the last command: bash would exec it in place of this shell.
		exit 0
	) </dev/null >>"$logs/$id.log" 2>&1 &
	super=$!
	echo "$super" >"$run_dir/$id.super"
	record supervisor "$super" loopback.sh
	for ((n = 0; n < 500; n++)); do
		[[ -s $run_dir/$id.pid ]] && break
		sleep 0.01
	done
	[[ -s $run_dir/$id.pid ]] || die "$id: its supervisor (pid $super) did not report chatd's pid"
	pid=$(<"$run_dir/$id.pid")
	record chatd "$pid" "$chatd_bin"
}

# save_chatd_env writes the CHATD_* environment of the instances (NUL-separated NAME=value)
# and the binary's path, for restart.
save_chatd_env() {
	local name
	: >"$run_dir/chatd.env"
	for name in $(compgen -e); do
		case $name in
		CHATD_LISTEN | CHATD_REDIS_URL | CHATD_INSTANCE_ID) ;;
		CHATD_*) printf '%s=%s\0' "$name" "${!name}" >>"$run_dir/chatd.env" ;;
		esac
	done
	printf '%s\n' "$chatd_bin" >"$run_dir/chatd.bin"
}

# load_chatd_env replaces the CHATD_* environment with the one save_chatd_env wrote.
load_chatd_env() {
	local name kv
	for name in $(compgen -e); do
		[[ $name == CHATD_* ]] && unset "$name"
	done
	while IFS= read -r -d '' kv; do
		export "${kv?}"
	done <"$run_dir/chatd.env"
}

# env_value KEY: prints KEY's value from $run_dir/env.
env_value() {
	local k v
	while IFS='=' read -r k v; do
		if [[ $k == "$1" ]]; then
			printf '%s\n' "$v"
			return 0
		fi
	done <"$run_dir/env"
	die "$run_dir/env has no $1"
}

cmd_restart() {
	(($# == 2)) || die "usage: loopback.sh restart DIR I"
	local dir=$1 i=$2
	[[ -d $dir ]] || die "restart: no such folder: $dir"
	run_dir=$(cd "$dir" && pwd)
	[[ -s $run_dir/pids && -f $run_dir/env && -f $run_dir/chatd.env && -f $run_dir/chatd.bin ]] ||
		die "restart: nothing runs in $run_dir (run 'loopback.sh start $run_dir' first)"
	local -a ports pids
	IFS=, read -r -a ports <<<"$(env_value CHATD_PORTS)"
	IFS=, read -r -a pids <<<"$(env_value CHATD_PIDS)"
	is_uint "$i" && ((i >= 1 && i <= ${#ports[@]})) ||
		die "restart: instance must be between 1 and ${#ports[@]}, not '$i'"
	local id="chatd$i" p=${ports[i - 1]} old=${pids[i - 1]} logs="$run_dir/logs"
	chatd_bin=$(<"$run_dir/chatd.bin")
	redis_url=$(env_value REDIS_URL)

	# Stop the running instance; its supervisor records how it exited.
	if pid_matches "$old" "$chatd_bin"; then
		kill -TERM "$old" 2>/dev/null || true
	fi
	local super deadline=$((SECONDS + stop_timeout)) killed=0
	super=$(cat "$run_dir/$id.super" 2>/dev/null) || super=""
	until [[ -s $run_dir/$id.exit ]]; do
		if ! { is_uint "$super" && alive "$super"; } && [[ ! -s $run_dir/$id.exit ]]; then
			die "restart: the supervisor of $id ended without recording an exit status"
		fi
		if ((SECONDS >= deadline)); then
			((killed == 0)) || die "restart: $id (pid $old) did not exit after SIGKILL"
			echo "loopback.sh: killing $id (pid $old) after ${stop_timeout}s" >&2
			kill -KILL "$old" 2>/dev/null || true
			killed=1
			deadline=$((SECONDS + 5))
		fi
		sleep 0.05
	done
	local status
	status=$(<"$run_dir/$id.exit")
	# Forget the old processes (and their supervisor, which has ended).
	local k q w
	{
		while read -r k q w; do
			if [[ $k == chatd && $q == "$old" ]] || { [[ $k == supervisor ]] && ! alive "$q"; }; then
				continue
			fi
			echo "$k $q $w"
		done <"$run_dir/pids"
	} >"$run_dir/pids.tmp"
	mv "$run_dir/pids.tmp" "$run_dir/pids"

	# Start it again, the same way start did.
	load_chatd_env
	launch_chatd "$i" "$p"
	wait_ready "$id" "$pid" "$logs/$id.log" status_is "$p" /readyz 200 ||
		die "restart: $id did not come back; it stays recorded for stop"
	pids[i - 1]=$pid
	local IFS=,
	sed "s/^CHATD_PIDS=.*/CHATD_PIDS=${pids[*]}/" "$run_dir/env" >"$run_dir/env.tmp"
	mv "$run_dir/env.tmp" "$run_dir/env"
	echo "$id: pid $old exited with status $status; pid $pid serves on port $p"
	if [[ $status != 0 ]]; then
		echo "loopback.sh: $id (pid $old) exited with status $status on SIGTERM; see $logs/$id.log" >&2
		exit 1
	fi
}

cmd_start() {
	local dir="" chatd_bin="" instances=3 print_env=0
	while (($# > 0)); do
		case $1 in
		--chatd)
			(($# >= 2)) || die "start: --chatd needs a path"
			chatd_bin=$2
			shift 2
			;;
		--instances)
			(($# >= 2)) || die "start: --instances needs a number"
			instances=$2
			shift 2
			;;
		--print-env)
			print_env=1
			shift
			;;
		-*) die "start: unknown option $1" ;;
		*)
			[[ -z $dir ]] || die "start: more than one folder given: $dir and $1"
			dir=$1
			shift
			;;
		esac
	done
	[[ -n $dir ]] || die "start: no folder given (usage: loopback.sh start DIR)"
	is_uint "$instances" && ((instances >= 1 && instances <= 16)) ||
		die "start: --instances must be between 1 and 16, not '$instances'"
	command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
	local nginx_bin
	nginx_bin=$(find_nginx)

	mkdir -p "$dir"
	run_dir=$(cd "$dir" && pwd)
	[[ ! -s $run_dir/pids ]] || die "start: $run_dir/pids exists: run 'loopback.sh stop $run_dir' first"
	local logs="$run_dir/logs"
	mkdir -p "$logs" "$run_dir/redis" "$run_dir/nginx"
	: >"$run_dir/pids"
	rm -f "$run_dir/env"
	# Anything that fails from here on stops what was started.
	stop_on_exit=$run_dir

	if [[ -z $chatd_bin ]]; then
		command -v go >/dev/null || die "start: go not found; pass --chatd BIN"
		chatd_bin="$run_dir/chatd"
		(cd "$repo_dir" && go build -o "$chatd_bin" ./cmd/chatd) || die "start: go build ./cmd/chatd failed"
	fi
	[[ -f $chatd_bin && -x $chatd_bin ]] || die "start: chatd binary '$chatd_bin' is not an executable file"
	chatd_bin=$(cd "$(dirname "$chatd_bin")" && pwd)/$(basename "$chatd_bin")

	# Redis.
	local redis_port redis_pid
	free_port
	redis_port=$port
	redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
		--dir "$run_dir/redis" --daemonize no --loglevel warning \
		</dev/null >"$logs/redis.log" 2>&1 &
	redis_pid=$!
	record redis "$redis_pid" redis-server
	wait_ready redis "$redis_pid" "$logs/redis.log" redis_pong "$redis_port"
	redis_url="redis://127.0.0.1:$redis_port/0"

	# chatd instances, with the compose file's settings unless the caller chose others.
	export CHATD_REDIS_PREFIX=${CHATD_REDIS_PREFIX:-chatd}
	export CHATD_LOG_FORMAT=${CHATD_LOG_FORMAT:-json}
	export CHATD_SHUTDOWN_TIMEOUT=${CHATD_SHUTDOWN_TIMEOUT:-30s}
	export CHATD_SHUTDOWN_DRAIN=${CHATD_SHUTDOWN_DRAIN:-10s}
	save_chatd_env
	local -a ports=() pids=() urls=() ids=()
	local i id
	for ((i = 1; i <= instances; i++)); do
		free_port
		id="chatd$i"
		: >"$logs/$id.log"
		launch_chatd "$i" "$port"
		ports+=("$port")
		pids+=("$pid")
		urls+=("http://127.0.0.1:$port")
		ids+=("$id")
	done
	for ((i = 0; i < instances; i++)); do
		wait_ready "${ids[i]}" "${pids[i]}" "$logs/${ids[i]}.log" status_is "${ports[i]}" /readyz 200
	done

	# nginx.
	local lb_port nginx_pid
	free_port
	lb_port=$port
	render_nginx "$run_dir/nginx/nginx.conf" "$lb_port" "${ports[@]}"
	"$nginx_bin" -e stderr -p "$run_dir/nginx/" -c "$run_dir/nginx/nginx.conf" \
		-g "daemon off; pid $run_dir/nginx/nginx.pid;" \
		</dev/null >"$logs/nginx.log" 2>&1 &
	nginx_pid=$!
	record nginx "$nginx_pid" nginx
	wait_ready nginx "$nginx_pid" "$logs/nginx.log" status_is "$lb_port" /readyz 200

	local IFS=,
	cat >"$run_dir/env.tmp" <<EOF
LB_URL=http://127.0.0.1:$lb_port
LB_PORT=$lb_port
REDIS_URL=$redis_url
REDIS_PORT=$redis_port
REDIS_PID=$redis_pid
CHATD_URLS=${urls[*]}
CHATD_PORTS=${ports[*]}
CHATD_PIDS=${pids[*]}
CHATD_INSTANCE_IDS=${ids[*]}
NGINX_PID=$nginx_pid
LOG_DIR=$logs
EOF
	mv "$run_dir/env.tmp" "$run_dir/env"
	stop_on_exit=""
	if ((print_env)); then
		cat "$run_dir/env"
	fi
}

cmd_run() {
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/chatd-loopback.XXXXXX")
	remove_on_exit=$tmp
	trap 'exit 0' INT TERM
	cmd_start "$tmp" "$@"
	stop_on_exit=$tmp
	cat "$tmp/env"
	echo "chatd behind nginx: $(grep '^LB_URL=' "$tmp/env" | cut -d= -f2-) (Ctrl-C stops; logs in $tmp/logs)"
	# Wait until a signal or until any process dies.
	local pid
	while :; do
		while read -r _ pid _; do
			alive "$pid" || {
				echo "loopback.sh: process $pid exited; stopping" >&2
				exit 1
			}
		done <"$tmp/pids"
		sleep 1
	done
}

# on_exit stops what a failed or interrupted start began, and what run started.
stop_on_exit=""
remove_on_exit=""
on_exit() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -n $stop_on_exit ]]; then
		cmd_stop "$stop_on_exit" || true
	fi
	if [[ -n $remove_on_exit ]]; then
		rm -rf "$remove_on_exit"
	fi
	exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

(($# > 0)) || usage
command=$1
shift
case $command in
start) cmd_start "$@" ;;
stop)
	(($# == 1)) || die "usage: loopback.sh stop DIR"
	cmd_stop "$1"
	;;
run) cmd_run "$@" ;;
restart) cmd_restart "$@" ;;
nginx-conf)
	(($# >= 3)) || die "usage: loopback.sh nginx-conf OUT LB_PORT CHATD_PORT..."
	render_nginx "$@"
	;;
-h | --help | help) usage ;;
*) die "unknown command '$command' (start, stop, restart, run, nginx-conf)" ;;
esac
