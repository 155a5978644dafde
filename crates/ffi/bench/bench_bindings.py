#!/usr/bin/env python3
"""Phone-binding figures for docs/BENCHMARKS.md, measured through the generated Python bindings
(release builds) against a real doorstep-server on 127.0.0.1:

1. record a visit on an encrypted replica (median of --visits visits on households of a
   500-household grid);
2. open a replica of 1,000 documents: Replica.open + the first households_in_grid, in process
   and in a fresh Python process with its peak RSS (ru_maxrss), beside a Python that only
   imports the module;
3. a full sync of a 500-household grid (12 visits each) to a freshly enrolled device: time and
   the SyncReport's bytes;
4. the binding layer's overhead: the same record-visit and open operations done directly on
   doorstep-core by crates/ffi/examples/binding_overhead.rs, on copies of the same file with
   the same visits, alternating with the Python side round by round so both see the same load.

The fixture is built as a phone gets it: one enrolled device (a grid worker of grids A and B)
registers 500 households in grid A and 300 in grid B with 12 visits each, raises 200 requests
on grid B's households and syncs; a second device of the same member enrols and syncs the
1,000 documents (the replica of figures 1, 2 and 4); devices of a member of grid A only
enrol and sync the 500-household grid (figure 3).

Build first (the release server, the release bindings, the Rust example):
    cargo build --release -p doorstep-server
    scripts/bindings --release
    cargo build --release -p doorstep-ffi --example binding_overhead
Run:
    python3 crates/ffi/bench/bench_bindings.py
Standard library only. Every loop is bounded; all traffic goes to 127.0.0.1.
"""

import argparse
import asyncio
import datetime
import gc
import hashlib
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
KEY = hashlib.sha256(b"doorstep binding benchmark").digest()  # 32 bytes, a raw SQLCipher key
T0_MS = 1_767_603_600_000  # 2026-01-05 09:00 UTC, as the core fixtures
DAY_MS = 86_400_000

# ---- fixture content: the same generator as crates/core/benches/support/mod.rs -------------

SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"]
GIVEN_NAMES = ["秀英", "建国", "桂兰", "志强", "丽娟", "伟", "芳", "海燕", "国华", "玉梅", "军", "红霞", "子涵", "浩然", "淑珍", "文博"]
FOUND = [
    "老人身体状况良好，精神不错，",
    "独居老人反映最近腿脚不便，下楼买菜困难，",
    "家中两位老人均在，儿子在外地打工，",
    "入户检查消防安全，楼道堆放的纸箱已劝导清理，",
    "低保户家庭，孩子上初二，学习用品短缺，",
    "回访上次反映的卫生间漏水问题，物业已上门维修，",
    "老人刚出院，需要定期复查，",
    "敲门无人应答，电话联系得知一家人回老家探亲，",
    "夫妻因噪音问题与楼上邻居有矛盾，",
    "残疾人家庭，轮椅老旧，申请了辅具适配，",
    "发现电动车在室内充电，已说明火灾危险，",
    "老人反映养老金到账时间比往常晚，",
]
DONE = [
    "已联系志愿者每周二、五代购蔬菜。",
    "讲解了高龄津贴申领流程，老人表示下周去社区办理。",
    "已引导到小区集中充电桩充电。",
    "已登记微心愿，并推荐了街道下月的招聘会。",
    "居民表示满意，顺便宣传了防范电信诈骗知识。",
    "已联系社区卫生服务中心签约家庭医生。",
    "已告知邻居留意，回来后再补一次走访。",
    "约定周末在社区调解室当面协商，网格长一同参加。",
    "讲解了残疾人两项补贴政策，材料已收齐。",
    "提醒冬季注意通风，防止一氧化碳中毒。",
    "已报街道民政科跟进，三天内答复。",
    "暂无其他需求，下次走访再了解。",
]
NEEDS = ["代购药品", "上门理发", "维修水管", "办理高龄津贴", "陪同就医", "安装扶手"]
REQUESTS = [
    ("facility_repair", "3栋2单元楼道声控灯坏了一个多月，老人晚上上下楼看不清，希望尽快维修。"),
    ("sanitation", "小区东门垃圾桶满了没人清运，天热有异味，还招苍蝇，希望增加清运次数。"),
    ("neighbour_dispute", "楼上住户晚上十一点以后经常拖动家具，噪音很大，多次沟通无效，请社区协调。"),
    ("elderly_care", "独居老人行动不便，希望能安排助餐服务，每天中午送一顿饭到家。"),
    ("health", "老人患糖尿病多年，希望家庭医生能定期上门测血糖，并指导用药。"),
    ("public_safety_fire", "地下车库有人私拉电线给电动车充电，存在火灾隐患，请尽快处理。"),
    ("policy_question", "想了解孩子入学需要准备哪些材料，户口不在本区能不能在附近小学就读。"),
    ("micro_wish", "孩子想要一套课外读物和一个新书包，家里经济困难，希望有爱心人士帮助。"),
]
VISIT_KINDS = ["routine", "follow_up", "care", "safety_check"]


class Rng:
    """Seeded xorshift64, as the Rust fixtures."""

    def __init__(self, seed):
        self.x = (seed | 1) & 0xFFFFFFFFFFFFFFFF

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.x = x
        return x

    def below(self, n):
        return self.next() % n

    def pick(self, items):
        return items[self.below(len(items))]


def visit_fields(rng):
    """(kind, notes, needs) of a visit with realistic notes; one in three notes a need."""
    kind = VISIT_KINDS[rng.below(len(VISIT_KINDS))]
    needs = [rng.pick(NEEDS)] if rng.below(3) == 0 else []
    d = rng.below(3)
    if d == 0:
        detail = f"测得血压{105 + rng.below(60)}/{60 + rng.below(35)}，"
    elif d == 1:
        detail = f"约定{1 + rng.below(12)}月{1 + rng.below(28)}日再次上门，"
    else:
        detail = f"登记联系电话139{rng.below(100_000_000):08}，"
    return kind, f"{rng.pick(FOUND)}{detail}{rng.pick(DONE)}", needs


# ---- helpers ----------------------------------------------------------------------------------


def ms(ns):
    return ns / 1e6


def median(values):
    return statistics.median(values) if values else float("nan")


def p90(values):
    if not values:
        return float("nan")
    s = sorted(values)
    pos = 0.9 * (len(s) - 1)
    return (s[int(pos)] + s[min(len(s) - 1, int(pos) + (pos % 1 > 0))]) / 2


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def remove_db(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def copy_db(src, dst):
    remove_db(dst)
    shutil.copyfile(src, dst)
    if os.path.exists(src + "-wal"):
        shutil.copyfile(src + "-wal", dst + "-wal")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_0-9]+)=(\S+)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        info["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        info["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return info


# ---- the server -------------------------------------------------------------------------------


class Server:
    """A doorstep-server on 127.0.0.1 over its own data directory, set up with its admin CLI."""

    def __init__(self, binary, data_dir):
        self.binary, self.data_dir, self.process, self.url = binary, data_dir, None, None

    def admin(self, *args):
        return subprocess.run([self.binary, "--data-dir", self.data_dir, *args], check=True, capture_output=True, text=True, timeout=120).stdout

    def grid(self, name, community):
        return self.admin("grid", "add", "--name", name, "--community", community).split("grid created: ")[1].split()[0]

    def member(self, name, grids):
        flags = [f for g in grids for f in ("--grid", g)]
        return self.admin("member", "add", "--name", name, "--role", "grid_worker", *flags).split("member added: ")[1].split()[0]

    def code(self, member):
        return self.admin("enrol-code", "--member", member).strip().splitlines()[-1]

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--data-dir", self.data_dir, "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 1.0)
            if not ready:
                continue
            line = self.process.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on (\S+)", line)
            if m:
                self.url = m.group(1)
                if not self.url.startswith("http://127.0.0.1:"):
                    raise RuntimeError(f"server is not on 127.0.0.1: {self.url}")
                # Keep draining its output so a chatty log cannot block it.
                threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
                return
        self.stop()
        raise RuntimeError("the server did not start")

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None


# ---- the benchmark ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = os.path.abspath(args.dir)
        self.results = {"machine": machine(), "load": {"start": load()}}
        self.rust = None if args.no_rust else os.path.abspath(args.example)

    # -- bindings --

    def install_bindings(self):
        """Copies the generated module and library into the work folder (scripts/bindings may
        replace target/bindings while this runs) and imports it from there."""
        src = os.path.abspath(self.args.bindings)
        dst = os.path.join(self.dir, "python")
        os.makedirs(dst, exist_ok=True)
        for name in ("doorstep_ffi.py", "libdoorstep_ffi.so"):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
        lib = os.path.join(dst, "libdoorstep_ffi.so")
        release = os.path.join(ROOT, "target", "release", "libdoorstep_ffi.so")
        is_release = os.path.exists(release) and sha256_file(release) == sha256_file(lib)
        self.results["bindings"] = {"from": src, "library_bytes": os.path.getsize(lib), "matches_target_release": is_release}
        if not is_release:
            log("WARNING: the bindings' library is not target/release/libdoorstep_ffi.so (run scripts/bindings --release)")
        sys.path.insert(0, dst)
        global ffi
        import doorstep_ffi as ffi  # noqa: F401  (module-level name used below)
        self.pydir = dst

    def household(self, rng, grid, community, index):
        surname = rng.pick(SURNAMES)
        residents = []
        for r in range(2 + rng.below(2)):
            name = (surname if r == 0 else rng.pick(SURNAMES)) + rng.pick(GIVEN_NAMES)
            sex = ffi.Sex.MALE if rng.below(2) == 0 else ffi.Sex.FEMALE
            birth = 1935 + rng.below(85)
            phone = f"139{rng.below(100_000_000):08}"
            tags = [list(ffi.ResidentTag)[rng.below(len(ffi.ResidentTag))]] if rng.below(4) == 0 else []
            residents.append(ffi.NewResident(name=name, sex=sex, birth_year=birth, phone=phone, tags=tags))
        address = ffi.Address(
            community=community, grid=grid, building=f"{index // 48 + 1}栋", unit=f"{index // 12 % 4 + 1}单元",
            room=f"{index // 2 % 6 + 1}0{index % 2 + 1}",
        )
        return ffi.NewHousehold(address=address, residents=residents, notes="")

    def new_visit(self, kind, notes, needs, at_ms):
        return ffi.NewVisit(kind=getattr(ffi.VisitKind, kind.upper()), notes=notes, needs=needs, at_ms=at_ms)

    def replica(self, name):
        return ffi.Replica.open(os.path.join(self.dir, name), KEY)

    def enrol(self, replica, member, name):
        asyncio.run(replica.enrol(self.server.url, self.server.code(member), name))

    # -- the fixture --

    def build(self):
        a = self.args
        self.server = Server(os.path.abspath(a.server), os.path.join(self.dir, "server"))
        os.makedirs(self.server.data_dir)
        self.grid_a = self.server.grid("幸福社区第一网格", "幸福社区")
        self.grid_b = self.server.grid("和平社区第一网格", "和平社区")
        self.member_ab = self.server.member("王芳", [self.grid_a, self.grid_b])
        self.member_a = self.server.member("李强", [self.grid_a])
        self.server.start()
        log(f"server on {self.server.url}; building the fixture (load {load()})")

        builder = self.replica("builder.db")
        self.enrol(builder, self.member_ab, "builder")
        rng = Rng(1_000)
        start = time.perf_counter_ns()
        writes = 0
        grid_b_homes = []
        for grid, community, count in ((self.grid_a, "幸福社区", a.grid_a), (self.grid_b, "和平社区", a.grid_b)):
            for index in range(count):
                home = builder.create_household(self.household(rng, grid, community, index))
                for v in range(12):
                    kind, notes, needs = visit_fields(rng)
                    builder.record_visit(home, self.new_visit(kind, notes, needs, T0_MS + v * 14 * DAY_MS + index * 60_000))
                writes += 13
                if grid == self.grid_b:
                    grid_b_homes.append(home)
        for r in range(a.requests):
            category, description = REQUESTS[rng.below(len(REQUESTS))]
            request = builder.raise_request(ffi.NewRequest(
                household=grid_b_homes[rng.below(len(grid_b_homes))], grid=None, category=category, description=description,
                urgency=ffi.Urgency.URGENT if r % 7 == 0 else ffi.Urgency.NORMAL, at_ms=T0_MS + r * DAY_MS // 2,
            ))
            dispatch = ffi.RequestAction.DISPATCH(department="community_office")
            actions = [
                [ffi.RequestAction.ACCEPT(), dispatch],
                [ffi.RequestAction.RESOLVE_ON_SPOT()],
                [ffi.RequestAction.ACCEPT(), dispatch, ffi.RequestAction.RESOLVE(),
                 ffi.RequestAction.FOLLOW_UP(satisfaction=ffi.Satisfaction.SATISFIED), ffi.RequestAction.CLOSE()],
            ][r % 3]
            for action in actions:
                builder.act_on_request(request, action, "已与居民电话沟通，按流程办理。")
            writes += 1 + len(actions)
        build_s = (time.perf_counter_ns() - start) / 1e9
        start = time.perf_counter_ns()
        up = asyncio.run(builder.sync(None))
        up_s = (time.perf_counter_ns() - start) / 1e9
        if up.unsynced_left or up.held_back:
            raise RuntimeError(f"the builder's upload was incomplete: {up}")
        self.results["fixture"] = {
            "documents": builder.document_count(), "writes": writes, "build_s": build_s,
            "write_ms_mean": build_s * 1e3 / writes, "upload_s": up_s, "upload_bytes_up": up.bytes_up,
            "upload_bytes_down": up.bytes_down, "upload_round_trips": up.round_trips,
        }
        del builder
        log(f"built {writes} writes in {build_s:.1f} s, uploaded in {up_s:.2f} s (load {load()})")

        # The phone of figures 1, 2 and 4: a second device of the same member syncs 1,000 documents.
        phone = self.replica("phone.db")
        self.enrol(phone, self.member_ab, "phone")
        start = time.perf_counter_ns()
        report = asyncio.run(phone.sync(None))
        self.results["sync_1000"] = self.sync_figures(report, time.perf_counter_ns() - start)
        self.results["sync_1000"]["documents"] = phone.document_count()
        if phone.document_count() != a.grid_a + a.grid_b + a.requests:
            raise RuntimeError(f"the phone holds {phone.document_count()} documents")
        del phone
        gc.collect()
        if os.path.exists(os.path.join(self.dir, "phone.db-wal")):
            log("note: phone.db-wal is still there; copies include it")

        rng = Rng(7)
        homes = [h.id for h in ffi.Replica.open(os.path.join(self.dir, "phone.db"), KEY).households_in_grid(self.grid_a)]
        gc.collect()
        homes.sort()  # the list's order depends on random ids' ties; sort for a stable plan
        self.plan = []
        with open(os.path.join(self.dir, "plan.tsv"), "w") as f:
            for i in range(a.visits):
                home = homes[rng.below(len(homes))]
                at_ms = T0_MS + 12 * 14 * DAY_MS + i * 60_000
                kind, notes, needs = visit_fields(rng)
                self.plan.append((home, self.new_visit(kind, notes, needs, at_ms)))
                f.write(f"{home}\t{at_ms}\t{kind}\t{','.join(needs)}\t{notes}\n")
        with open(os.path.join(self.dir, "fixture.txt"), "w") as f:
            f.write(f"key={KEY.hex()}\ngrid={self.grid_a}\nreplica=phone.db\nplan=plan.tsv\n")

    def sync_figures(self, report, elapsed_ns):
        return {
            "ms": ms(elapsed_ns), "round_trips": report.round_trips, "documents_received": report.documents_received,
            "bytes_up": report.bytes_up, "bytes_down": report.bytes_down, "verified": report.verified,
            "unsynced_left": report.unsynced_left,
        }

    # -- figure 3: full sync of a 500-household grid --

    def full_sync(self):
        runs = []
        for i in range(self.args.syncs):
            name = f"fresh-{i}.db"
            remove_db(os.path.join(self.dir, name))
            device = self.replica(name)
            self.enrol(device, self.member_a, f"fresh-{i}")
            start = time.perf_counter_ns()
            report = asyncio.run(device.sync(None))
            figures = self.sync_figures(report, time.perf_counter_ns() - start)
            figures["documents"] = device.document_count()
            figures["load"] = load()
            runs.append(figures)
            del device
            gc.collect()
            log(f"fresh sync {i + 1}: {figures['ms']:.0f} ms, {figures['bytes_down']} B down (load {figures['load']})")
        self.results["sync_500"] = runs
        if self.rust:
            out = self.run_rust("doc-bytes", self.dir, "fresh-0.db")
            self.results["sync_500_documents"] = {k: int(v) for k, v in out.items()}

    # -- figures 1, 2, 4: record and open, Python and Rust alternating --

    def run_rust(self, *args):
        out = subprocess.run([self.rust, *args], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"binding_overhead {' '.join(args)} failed: {out.stderr}")
        return parse_kv(out.stdout)

    def python_record(self, path):
        replica = ffi.Replica.open(path, KEY)
        samples = []
        for home, visit in self.plan:
            start = time.perf_counter_ns()
            replica.record_visit(home, visit)
            samples.append(time.perf_counter_ns() - start)
        del replica
        gc.collect()
        return [ms(s) for s in samples]

    def python_open(self, path, runs):
        """Opens alone `runs` times, then open + first list `runs` times."""
        alone, opens, lists = [], [], []
        for _ in range(runs):
            start = time.perf_counter_ns()
            replica = ffi.Replica.open(path, KEY)
            alone.append(ms(time.perf_counter_ns() - start))
            del replica
        for _ in range(runs):
            start = time.perf_counter_ns()
            replica = ffi.Replica.open(path, KEY)
            opened = time.perf_counter_ns()
            rows = replica.households_in_grid(self.grid_a)
            listed = time.perf_counter_ns()
            assert len(rows) == self.args.grid_a
            del replica, rows
            opens.append(ms(opened - start))
            lists.append(ms(listed - opened))
        gc.collect()
        return alone, opens, lists

    def py_record_side(self, folder, tag):
        path = os.path.join(folder, "py-record.db")
        copy_db(os.path.join(self.dir, "phone.db"), path)
        samples = self.python_record(path)
        remove_db(path)
        return {f"py_record_{tag}_median": median(samples), f"py_record_{tag}_p90": p90(samples),
                f"py_record_{tag}_mean": statistics.fmean(samples)}

    def rs_record_side(self, folder, tag):
        path = os.path.join(folder, "rust-record.db")
        copy_db(os.path.join(self.dir, "phone.db"), path)
        out = self.run_rust("record", self.dir, path, "enc", "full")
        remove_db(path)
        return {f"rs_record_{tag}_median": float(out["record_visit_median_ms"]),
                f"rs_record_{tag}_p90": float(out["record_visit_p90_ms"]),
                f"rs_record_{tag}_mean": float(out["record_visit_mean_ms"])}

    def py_open_side(self):
        alone, opens, lists = self.python_open(os.path.join(self.dir, "phone.db"), self.args.open_runs)
        return {"py_open_only_median": median(alone), "py_open_median": median(opens), "py_list_median": median(lists),
                "py_open_list_median": median([o + l for o, l in zip(opens, lists)])}

    def rs_open_side(self):
        runs = str(self.args.open_runs)
        alone = self.run_rust("open-only", self.dir, "phone.db", "enc", runs)
        both = self.run_rust("open", self.dir, "phone.db", "enc", runs)
        return {"rs_open_only_median": float(alone["open_median_ms"]), "rs_open_median": float(both["open_median_ms"]),
                "rs_list_median": float(both["list_median_ms"])}

    def rounds(self):
        """Python and Rust alternate (which goes first alternates too), so both see the same
        load: record on the work folder's disk, record on tmpfs (no disk wait: the CPU cost
        alone), open alone, open + first list."""
        tmpfs = None
        if self.args.tmpfs and os.path.isdir(self.args.tmpfs):
            tmpfs = os.path.join(self.args.tmpfs, f"doorstep-bench-{os.getpid()}")
            os.makedirs(tmpfs, exist_ok=True)
        self.results["tmpfs"] = tmpfs
        out = []
        try:
            for r in range(self.args.rounds):
                python_first = r % 2 == 0 or not self.rust
                row = {"load_before": load(), "python_first": python_first}
                for folder, tag in [(self.dir, "disk")] + ([(tmpfs, "tmpfs")] if tmpfs else []):
                    sides = [self.py_record_side, self.rs_record_side] if self.rust else [self.py_record_side]
                    for side in sides if python_first else sides[::-1]:
                        row.update(side(folder, tag))
                    if self.rust:
                        row[f"record_{tag}_ratio"] = row[f"py_record_{tag}_median"] / row[f"rs_record_{tag}_median"]
                        row[f"record_{tag}_mean_diff"] = row[f"py_record_{tag}_mean"] - row[f"rs_record_{tag}_mean"]
                sides = [self.py_open_side, self.rs_open_side] if self.rust else [self.py_open_side]
                for side in sides if python_first else sides[::-1]:
                    row.update(side())
                if self.rust:
                    row["open_only_ratio"] = row["py_open_only_median"] / row["rs_open_only_median"]
                    row["list_ratio"] = row["py_list_median"] / row["rs_list_median"]
                    row["open_list_ratio"] = row["py_open_list_median"] / (row["rs_open_median"] + row["rs_list_median"])
                row["load_after"] = load()
                out.append(row)
                log(f"round {r + 1}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        finally:
            if tmpfs:
                shutil.rmtree(tmpfs, ignore_errors=True)
        self.results["rounds"] = out

    def call_costs(self):
        """The binding's fixed cost per call, from Python: a call that does nothing in the core
        (`member_id`) and lowering one NewVisit record."""
        replica = ffi.Replica.open(os.path.join(self.dir, "phone.db"), KEY)
        null = []
        for _ in range(2000):
            start = time.perf_counter_ns()
            replica.member_id()
            null.append((time.perf_counter_ns() - start) / 1e3)
        del replica
        gc.collect()
        converter = getattr(ffi, "_UniffiFfiConverterTypeNewVisit", None) or getattr(ffi, "_UniffiConverterTypeNewVisit", None)
        lower = []
        if converter:
            for _, visit in self.plan:
                start = time.perf_counter_ns()
                converter.lower(visit)
                lower.append((time.perf_counter_ns() - start) / 1e3)
        self.results["call_costs_us"] = {"member_id_median": median(null), "lower_new_visit_median": median(lower)}

    def fresh_python(self):
        snippet = r"""
import json, resource, sys, time
t0 = time.perf_counter_ns()
sys.path.insert(0, sys.argv[1])
import doorstep_ffi
t1 = time.perf_counter_ns()
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mode = sys.argv[2]
out = {"import_ms": (t1 - t0) / 1e6, "rss_import_kb": rss_import}
if mode == "open":
    r = doorstep_ffi.Replica.open(sys.argv[3], bytes.fromhex(sys.argv[4]))
    t2 = time.perf_counter_ns()
    rows = r.households_in_grid(sys.argv[5])
    t3 = time.perf_counter_ns()
    out.update(open_ms=(t2 - t1) / 1e6, list_ms=(t3 - t2) / 1e6, rows=len(rows))
out["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["vmhwm_kb"] = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps(out))
"""
        bare = r"""
import json, resource
out = {"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
out["vmhwm_kb"] = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps(out))
"""
        phone = os.path.join(self.dir, "phone.db")

        def run(code, *argv):
            # Linux keeps a process's ru_maxrss across exec, so a child started straight from this
            # (large) process would report this process's peak. A shell that forks the child
            # gives it a fresh accounting: the figure is the child's own.
            command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", code, *argv]
            out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
            return json.loads(out.stdout)

        runs = self.args.fresh_runs
        opened = [run(snippet, self.pydir, "open", phone, KEY.hex(), self.grid_a) for _ in range(runs)]
        imported = [run(snippet, self.pydir, "import") for _ in range(runs)]
        interpreter = [run(bare) for _ in range(runs)]
        self.results["fresh_python"] = {"open": opened, "import_only": imported, "interpreter": interpreter}
        if self.rust:
            enc = [self.run_rust("open-once", self.dir, "phone.db", "enc") for _ in range(runs)]
            self.results["fresh_rust"] = [{k: float(v) for k, v in e.items()} for e in enc]

    def rust_report(self):
        if not self.rust:
            return
        out = subprocess.run([self.rust, self.dir], capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            raise RuntimeError(f"binding_overhead failed: {out.stderr}")
        self.results["rust_report"] = out.stdout

    def fsync_probe(self, writes=200):
        """What one durable commit waits for on this disk: append 4 KiB and fsync, timed."""
        path = os.path.join(self.dir, "fsync-probe")
        samples = []
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(writes):
                start = time.perf_counter_ns()
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
                samples.append(ms(time.perf_counter_ns() - start))
        finally:
            os.close(fd)
            os.remove(path)
        self.results["fsync_4k"] = {"n": writes, "median_ms": median(samples), "p10_ms": sorted(samples)[writes // 10], "p90_ms": p90(samples)}

    # -- output --

    def table(self):
        r, a = self.results, self.args
        rounds = r["rounds"]
        rust = bool(self.rust)

        def per_round(key, fmt="{:.2f}"):
            return " / ".join(fmt.format(x[key]) for x in rounds)

        def med(key, fmt="{:.2f}"):
            return fmt.format(median([x[key] for x in rounds]))

        lines = [
            f"Rounds: {len(rounds)}, Python first in rounds " + ", ".join(str(i + 1) for i, x in enumerate(rounds) if x["python_first"])
            + (f"; tmpfs: {r['tmpfs']}" if r.get("tmpfs") else ""),
            "",
            "| figure | per round, in order | median of rounds | §6 target |",
            "|---|---|---|---|",
        ]
        for tag, where in (("disk", "replica on the work folder's disk"), ("tmpfs", "replica on tmpfs: no disk wait")):
            if f"py_record_{tag}_median" not in rounds[0]:
                continue
            target = "median ≤ 1 ms" if tag == "disk" else "(comparison)"
            lines.append(f"| record a visit through the bindings, encrypted, `synchronous=FULL`, {where} — median of {a.visits} (p90) | "
                         f"{per_round(f'py_record_{tag}_median')} ms ({per_round(f'py_record_{tag}_p90')}) | {med(f'py_record_{tag}_median')} ms | {target} |")
            if rust:
                lines += [
                    f"| same in Rust (`binding_overhead record`), same file and visits — median (p90) | "
                    f"{per_round(f'rs_record_{tag}_median')} ms ({per_round(f'rs_record_{tag}_p90')}) | {med(f'rs_record_{tag}_median')} ms | |",
                    f"| → binding overhead, record a visit ({tag}): Python ÷ Rust medians | {per_round(f'record_{tag}_ratio', '{:.3f}')} | **{med(f'record_{tag}_ratio', '{:.3f}')}** | |",
                    f"| → difference of the means ({tag}) | {per_round(f'record_{tag}_mean_diff', '{:+.3f}')} ms | {med(f'record_{tag}_mean_diff', '{:+.3f}')} ms | |",
                ]
        lines.append(f"| open 1,000 docs, bindings, in process — median of {a.open_runs} | {per_round('py_open_only_median')} ms | {med('py_open_only_median')} ms | ≤ 200 ms |")
        if rust:
            lines += [
                f"| same in Rust | {per_round('rs_open_only_median')} ms | {med('rs_open_only_median')} ms | |",
                f"| → binding overhead, open: Python ÷ Rust | {per_round('open_only_ratio')} | **{med('open_only_ratio')}** | |",
            ]
        lines.append(f"| open + first list of {a.grid_a} households, bindings, in process — median of {a.open_runs} | "
                     f"{per_round('py_open_list_median')} ms (list {per_round('py_list_median')}) | {med('py_open_list_median')} ms | ≤ 200 ms |")
        if rust:
            lines += [
                f"| same in Rust (open + list) | {' / '.join('%.2f' % (x['rs_open_median'] + x['rs_list_median']) for x in rounds)} ms (list {per_round('rs_list_median')}) | "
                f"{median([x['rs_open_median'] + x['rs_list_median'] for x in rounds]):.2f} ms | |",
                f"| → binding overhead, open + list: Python ÷ Rust (list alone) | {per_round('open_list_ratio')} ({per_round('list_ratio')}) | **{med('open_list_ratio')}** ({med('list_ratio')}) | |",
            ]
        cc = r.get("call_costs_us")
        if cc:
            lines.append(f"| fixed cost of a binding call from Python: `member_id()` / lowering one `NewVisit` — median | "
                         f"{cc['member_id_median']:.1f} µs / {cc['lower_new_visit_median']:.1f} µs | | |")
        fp = r["fresh_python"]
        open_total = [o["open_ms"] + o["list_ms"] for o in fp["open"]]
        rss_open = [o["rss_kb"] / 1024 for o in fp["open"]]
        rss_import = [o["rss_kb"] / 1024 for o in fp["import_only"]]
        rss_interp = [o["rss_kb"] / 1024 for o in fp["interpreter"]]
        import_ms = [o["import_ms"] for o in fp["import_only"]]
        vmhwm = median([o["vmhwm_kb"] / 1024 for o in fp["open"]])
        lines += [
            f"| open + first list in a fresh Python process — {len(open_total)} processes (first) | {' / '.join('%.1f' % t for t in open_total)} ms "
            f"(+ `import doorstep_ffi` {median(import_ms):.0f} ms) | {median(open_total):.2f} ms | ≤ 200 ms |",
            f"| peak RSS of that process (`ru_maxrss`; `VmHWM` {vmhwm:.1f} MB) | {min(rss_open):.1f}–{max(rss_open):.1f} MB | {median(rss_open):.1f} MB | ≤ 50 MB |",
            f"| peak RSS of a Python that only imports the module / of a bare interpreter | | {median(rss_import):.1f} / {median(rss_interp):.1f} MB | |",
        ]
        if rust and r.get("fresh_rust"):
            fr = r["fresh_rust"]
            lines.append(
                f"| same open + list in a fresh Rust process (`open-once`): time / peak RSS (`VmHWM`) / RSS before opening | | "
                f"{median([x['open_ms'] + x['list_ms'] for x in fr]):.2f} ms / {median([x['rss_kb'] for x in fr]) / 1024:.1f} MB / {median([x['rss_before_kb'] for x in fr]) / 1024:.1f} MB | |"
            )
        syncs = r["sync_500"]
        down = [s["bytes_down"] for s in syncs]
        lines.append(
            f"| full sync of a {a.grid_a}-household grid (12 visits each) to a freshly enrolled device — wall time | "
            f"{' / '.join('%.0f' % s['ms'] for s in syncs)} ms | {median([s['ms'] for s in syncs]):.0f} ms | ≤ 1 s |"
        )
        docs = r.get("sync_500_documents")
        ratio = f"; {median(down) / docs['saved_document_bytes']:.3f}× Σ `save()` ({docs['saved_document_bytes']} B)" if docs else ""
        lines.append(
            f"| bytes of that sync (SyncReport): down | {' / '.join(str(d) for d in down)} B | {median(down):.0f} B{ratio} | ≤ 1.1 × compressed documents |"
        )
        lines.append(
            f"| … up, round trips, documents received, verified | | {syncs[0]['bytes_up']} B, {syncs[0]['round_trips']}, "
            f"{syncs[0]['documents_received']}, {syncs[0]['verified']} | |"
        )
        s1000 = r["sync_1000"]
        lines.append(
            f"| (set-up) the 1,000-document phone's own first sync | | {s1000['ms']:.0f} ms, {s1000['bytes_down']} B down, {s1000['round_trips']} round trip(s) | |"
        )
        return "\n".join(lines)

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        entries = os.listdir(self.dir)
        if entries and "fixture.txt" not in entries and "python" not in entries:
            raise SystemExit(f"{self.dir} holds files this benchmark did not write; choose another --dir")
        for entry in entries:
            path = os.path.join(self.dir, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        self.install_bindings()
        self.fsync_probe()
        self.server = None
        try:
            self.build()
            self.full_sync()
        finally:
            if self.server:
                self.server.stop()
        self.results["load"]["after_build"] = load()
        self.rounds()
        self.call_costs()
        self.fresh_python()
        self.rust_report()
        self.results["load"]["end"] = load()
        with open(os.path.join(self.dir, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1, ensure_ascii=False)
        m = self.results["machine"]
        print(f"## Phone bindings: measured {m['date']}")
        print()
        print("Machine: " + "; ".join(f"{k} {v}" for k, v in m.items() if k != "date"))
        print(f"Bindings: {self.results['bindings']}")
        print(f"Load average (1/5/15 min): " + "; ".join(f"{k} {v}" for k, v in self.results["load"].items()))
        fs = self.results["fsync_4k"]
        print(f"fsync of a 4 KiB append in the work folder ({fs['n']} times): median {fs['median_ms']:.2f} ms, p10 {fs['p10_ms']:.2f}, p90 {fs['p90_ms']:.2f}")
        f = self.results["fixture"]
        print(f"Fixture: {f['documents']} documents, {f['writes']} writes through the bindings in {f['build_s']:.1f} s "
              f"({f['write_ms_mean']:.2f} ms mean per write), uploaded in {f['upload_s']:.2f} s")
        print()
        print(self.table())
        if self.results.get("rust_report"):
            print()
            print(self.results["rust_report"])
        print(f"\n(raw figures: {os.path.join(self.dir, 'results.json')})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=os.path.join(ROOT, "target", "bench-bindings"), help="work folder (emptied first)")
    p.add_argument("--bindings", default=os.path.join(ROOT, "target", "bindings", "python"))
    p.add_argument("--server", default=os.path.join(ROOT, "target", "release", "doorstep-server"))
    p.add_argument("--example", default=os.path.join(ROOT, "target", "release", "examples", "binding_overhead"))
    p.add_argument("--no-rust", action="store_true", help="skip the Rust side (no overhead ratios)")
    p.add_argument("--visits", type=int, default=500)
    p.add_argument("--rounds", type=int, default=4, help="Python/Rust alternations")
    p.add_argument("--tmpfs", default="/dev/shm", help="a tmpfs folder for the CPU-only record figure ('' to skip)")
    p.add_argument("--open-runs", type=int, default=30)
    p.add_argument("--fresh-runs", type=int, default=7)
    p.add_argument("--syncs", type=int, default=3)
    p.add_argument("--grid-a", type=int, default=500, help="households in the synced grid")
    p.add_argument("--grid-b", type=int, default=300)
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args()
    for n in ("visits", "rounds", "open_runs", "fresh_runs", "syncs", "grid_a", "grid_b", "requests"):
        if not 1 <= getattr(args, n) <= 100_000:
            p.error(f"--{n.replace('_', '-')} must be between 1 and 100000")
    Bench(args).run()


if __name__ == "__main__":
    main()
