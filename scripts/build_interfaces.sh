#!/usr/bin/env bash
# Builds the ROS 2 interfaces package ros_ws/src/robotrl_interfaces (msg/, srv/) into the virtualenv WITHOUT a
# ROS install, with the rosidl generator wheels that scripts/install.sh puts in .venv (requirements.lock).
# It does what `rosidl_generate_interfaces()` does in a colcon build, step by step:
#   1. .msg/.srv -> .idl (rosidl_adapter) and type descriptions + hashes (rosidl_generator_type_description);
#   2. C code (rosidl_generator_c), C type support for Fast DDS (rosidl_typesupport_fastrtps_c), introspection C
#      type support (rosidl_typesupport_introspection_c), the C type-support dispatch (rosidl_typesupport_c),
#      Python classes and their C converters (rosidl_generator_py);
#   3. compiles them with gcc/g++ into the same pieces the message wheels ship (std_msgs, ...):
#      .venv/lib/librobotrl_interfaces__{rosidl_generator_c,rosidl_typesupport_c,rosidl_typesupport_fastrtps_c,
#      rosidl_typesupport_introspection_c,rosidl_generator_py}.so and the Python package
#      site-packages/robotrl_interfaces (msg/, srv/, robotrl_interfaces_s__<typesupport> extension modules),
#      plus headers in .venv/include/robotrl_interfaces and the .msg/.srv/.idl/.json + ament index in .venv/share.
# Idempotent: nothing is rebuilt while the sources, this script and the installed ROS wheels are unchanged.
# Prints one line; fails loudly, naming what is missing. PYTHON=/path/to/python picks another environment.
# On a ROS install, build the same package with colcon instead (ros_ws/README.md).
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
trap 'echo "build_interfaces: failed at line $LINENO of $SELF" >&2' ERR
PKG=robotrl_interfaces
SRC="$PWD/ros_ws/src/$PKG"
PY="${PYTHON:-$PWD/.venv/bin/python}"
BUILD="$PWD/ros_ws/build/${PKG}_venv"
DEPS="builtin_interfaces service_msgs std_msgs"   # packages whose messages ours use (service_msgs: srv events)
TYPESUPPORTS="rosidl_typesupport_fastrtps_c rosidl_typesupport_introspection_c"

fail() { echo "build_interfaces: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "no Python at $PY (run scripts/install.sh first, or set PYTHON=)"
for tool in gcc g++; do
    command -v "$tool" >/dev/null || fail "'$tool' not found (Debian: apt-get install g++)"
done
# Paths of this environment: prefix (the ament prefix the ROS wheels install into), site-packages, headers.
read -r PREFIX SITE PYINC EXT < <("$PY" -c "
import sys, sysconfig
print(sys.prefix, sysconfig.get_paths()['platlib'], sysconfig.get_paths()['include'], sysconfig.get_config_var('EXT_SUFFIX'))
")

# Up to date? The stamp covers the interface sources, this script, the installed ROS wheels and the Python.
SOURCES=$(cd "$SRC" && ls package.xml msg/*.msg srv/*.srv)
STAMP=$( { (cd "$SRC" && cat $SOURCES); cat "$SELF"; echo "$SOURCES $PY $EXT"; ls -d "$SITE"/ros_*.dist-info 2>/dev/null || true; } \
    | sha256sum | cut -c1-16)
if [ "$(cat "$SITE/$PKG/.build_stamp" 2>/dev/null)" = "$STAMP" ]; then
    echo "robotrl_interfaces up to date in $SITE/$PKG"
    exit 0
fi
T0=$(date +%s%N)

# What the build needs, all named when missing.
missing=""
[ -f "$PYINC/Python.h" ] || missing="$missing Python.h(Debian:python3-dev)"
missing="$missing$("$PY" -c "
import importlib.util
for m in ('numpy rosidl_adapter rosidl_parser rosidl_pycommon rosidl_generator_type_description rosidl_generator_c '
          'rosidl_typesupport_c rosidl_typesupport_fastrtps_c rosidl_typesupport_introspection_c rosidl_generator_py').split():
    if importlib.util.find_spec(m) is None:
        print(' python:' + m, end='')
")"
for dep in $DEPS rosidl_generator_c rosidl_generator_py rosidl_typesupport_c $TYPESUPPORTS; do
    [ -d "$PREFIX/share/$dep" ] || missing="$missing $PREFIX/share/$dep"
done
NEEDED_LIBS="rcutils rosidl_runtime_c rosidl_typesupport_c rosidl_typesupport_introspection_c rosidl_typesupport_fastrtps_c
    rosidl_typesupport_fastrtps_cpp fastcdr rmw rosidl_dynamic_typesupport"
for dep in $DEPS; do
    for kind in rosidl_generator_c rosidl_typesupport_c rosidl_generator_py $TYPESUPPORTS; do
        NEEDED_LIBS="$NEEDED_LIBS ${dep}__$kind"
    done
done
for lib in $NEEDED_LIBS; do
    [ -e "$PREFIX/lib/lib$lib.so" ] || missing="$missing $PREFIX/lib/lib$lib.so"
done
[ -z "$missing" ] || fail "cannot build $PKG, missing:$missing (the ROS wheels come from requirements.lock via scripts/install.sh)"

rm -rf "$BUILD"
mkdir -p "$BUILD"
LOG="$BUILD/build.log"
trap - ERR
trap 'rc=$?; [ $rc = 0 ] || { echo "build_interfaces: FAILED building $PKG; last lines of $LOG:" >&2; tail -n 40 "$LOG" >&2; }' EXIT

# ---- 1 + 2: generate (the generators' own Python entry points, fed the argument files the CMake macros write)
"$PY" - "$PKG" "$SRC" "$BUILD" "$PREFIX" "$DEPS" "$TYPESUPPORTS" >>"$LOG" 2>&1 <<'EOF'
import json
import sys
from pathlib import Path

from rosidl_adapter.msg import convert_msg_to_idl
from rosidl_adapter.srv import convert_srv_to_idl
from rosidl_generator_c import generate_c
from rosidl_generator_py import generate_py
from rosidl_generator_type_description import generate_type_hash
from rosidl_typesupport_c import generate_c as generate_typesupport_c
from rosidl_typesupport_fastrtps_c import generate_typesupport_fastrtps_c
from rosidl_typesupport_introspection_c import generate_c as generate_introspection_c

pkg, src, build, prefix, deps, typesupports = sys.argv[1:]
src, build, share = Path(src), Path(build), Path(prefix) / 'share'
deps, typesupports = deps.split(), typesupports.split()

# .msg/.srv -> .idl
interface_files = sorted(src.glob('msg/*.msg')) + sorted(src.glob('srv/*.srv'))
idl_base = build / 'rosidl_adapter' / pkg
idl_tuples, idl_files = [], []
for f in interface_files:
    rel = f.relative_to(src)
    convert = convert_msg_to_idl if f.suffix == '.msg' else convert_srv_to_idl
    idl = Path(convert(src, pkg, rel, idl_base / rel.parent))
    idl_tuples.append(f'{idl_base}:{idl.relative_to(idl_base).as_posix()}')
    idl_files.append(str(idl))
dependencies = [f'{d}:{idl}' for d in deps for idl in sorted((share / d).glob('*/*.idl'))]


def arguments(name, **kw):
    path = build / f'{name}__arguments.json'
    path.write_text(json.dumps(dict(package_name=pkg, idl_tuples=idl_tuples, **kw), indent=2))
    return str(path)


def generator(name, **kw):
    return dict(output_dir=str(build / name / pkg), template_dir=str(share / name / 'resource'),
                target_dependencies=idl_files, ros_interface_dependencies=dependencies, **kw)


def visibility_header(name, header):
    template = (share / name / 'resource' / f'{header}.in').read_text()
    out = build / name / pkg / 'msg' / header
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(template.replace('@PROJECT_NAME@', pkg).replace('@PROJECT_NAME_UPPER@', pkg.upper()))


# type descriptions (.json) and their hashes, which the C code embeds
td_out = build / 'rosidl_generator_type_description' / pkg
generate_type_hash(arguments(
    'rosidl_generator_type_description', output_dir=str(td_out),
    include_paths=[f'{d}:{share / d}' for d in deps]))
description_tuples = []
for t in idl_tuples:
    rel = t.rsplit(':', 1)[1]
    json_file = td_out / Path(rel).with_suffix('.json')
    assert json_file.exists(), json_file
    description_tuples.append(f'{rel}:{json_file}')

generate_c(arguments('rosidl_generator_c', **generator(
    'rosidl_generator_c', type_description_tuples=description_tuples,
    ros_interface_files=[str(f) for f in interface_files])))
visibility_header('rosidl_generator_c', 'rosidl_generator_c__visibility_control.h')
generate_typesupport_fastrtps_c(arguments(
    'rosidl_typesupport_fastrtps_c', **generator('rosidl_typesupport_fastrtps_c')))
visibility_header('rosidl_typesupport_fastrtps_c', 'rosidl_typesupport_fastrtps_c__visibility_control.h')
generate_introspection_c(arguments(
    'rosidl_typesupport_introspection_c', **generator('rosidl_typesupport_introspection_c')))
visibility_header('rosidl_typesupport_introspection_c',
                  'rosidl_typesupport_introspection_c__visibility_control.h')
generate_typesupport_c(arguments('rosidl_typesupport_c', **generator('rosidl_typesupport_c')), typesupports)
py_out = build / 'rosidl_generator_py' / pkg
py_out.mkdir(parents=True, exist_ok=True)
(py_out / '__init__.py').write_text('')
generate_py(arguments('rosidl_generator_py', **generator('rosidl_generator_py')),
            ['rosidl_typesupport_c'] + typesupports)
EOF

# ---- 3: compile (what the CMake targets of rosidl_generate_interfaces build)
OUT="$BUILD/out"
mkdir -p "$OUT/lib" "$OUT/py"
INCS=(-I"$BUILD/rosidl_generator_c" -I"$BUILD/rosidl_typesupport_fastrtps_c" -I"$BUILD/rosidl_typesupport_introspection_c"
      -I"$BUILD/rosidl_generator_py" -I"$PYINC" -I"$("$PY" -c 'import numpy; print(numpy.get_include())')")
INCS+=(-I"$PREFIX/include")   # fastcdr/, fastdds/
for d in "$PREFIX"/include/*/; do INCS+=(-I"$d"); done   # ament layout: include/<pkg>/<pkg>/*.h
CFLAGS=(-O2 -fPIC -Wall -Wno-unused-parameter "${INCS[@]}")
LIBS_RPATH=(-L"$OUT/lib" -L"$PREFIX/lib" -Wl,-rpath,'$ORIGIN')
EXT_RPATH=(-L"$OUT/lib" -L"$PREFIX/lib" -Wl,-rpath,'$ORIGIN/../../..')   # site-packages/pkg -> <prefix>/lib
deplibs() { local kind="$1" out=""; for d in $DEPS; do out="$out -l${d}__$kind"; done; echo "$out"; }
L="$OUT/lib/lib${PKG}__"
srcs() { find "$BUILD/$1/$PKG" -name "$2" | sort; }

{
gcc -std=c11 -shared "${CFLAGS[@]}" -DROSIDL_GENERATOR_C_BUILDING_DLL_$PKG $(srcs rosidl_generator_c '*.c') \
    -o "${L}rosidl_generator_c.so" "${LIBS_RPATH[@]}" $(deplibs rosidl_generator_c) -lrosidl_runtime_c -lrcutils

g++ -std=c++17 -shared "${CFLAGS[@]}" -DROSIDL_TYPESUPPORT_FASTRTPS_C_BUILDING_DLL_$PKG \
    $(srcs rosidl_typesupport_fastrtps_c '*.cpp') -o "${L}rosidl_typesupport_fastrtps_c.so" "${LIBS_RPATH[@]}" \
    -l${PKG}__rosidl_generator_c $(deplibs rosidl_typesupport_fastrtps_c) $(deplibs rosidl_generator_c) \
    -lrosidl_typesupport_fastrtps_c -lrosidl_typesupport_fastrtps_cpp -lfastcdr -lrmw -lrosidl_dynamic_typesupport \
    -lrosidl_runtime_c -lrcutils & p1=$!
gcc -std=c11 -shared "${CFLAGS[@]}" -DROSIDL_TYPESUPPORT_INTROSPECTION_C_BUILDING_DLL_$PKG \
    $(srcs rosidl_typesupport_introspection_c '*.c') -o "${L}rosidl_typesupport_introspection_c.so" "${LIBS_RPATH[@]}" \
    -l${PKG}__rosidl_generator_c $(deplibs rosidl_typesupport_introspection_c) $(deplibs rosidl_generator_c) \
    -lrosidl_typesupport_introspection_c -lrosidl_runtime_c -lrcutils & p2=$!
g++ -std=c++17 -shared "${CFLAGS[@]}" -DROSIDL_GENERATOR_C_BUILDING_DLL_$PKG $(srcs rosidl_typesupport_c '*.cpp') \
    -o "${L}rosidl_typesupport_c.so" "${LIBS_RPATH[@]}" -l${PKG}__rosidl_generator_c $(deplibs rosidl_typesupport_c) \
    $(deplibs rosidl_generator_c) -lrosidl_typesupport_c -lrosidl_runtime_c -lrcutils
wait $p1; wait $p2

gcc -std=c11 -shared "${CFLAGS[@]}" $(srcs rosidl_generator_py '*_s.c') -o "${L}rosidl_generator_py.so" \
    "${LIBS_RPATH[@]}" -l${PKG}__rosidl_generator_c -l${PKG}__rosidl_typesupport_c $(deplibs rosidl_generator_py) \
    $(deplibs rosidl_typesupport_c) $(deplibs rosidl_generator_c) -lrosidl_runtime_c -lrcutils

pids=()
for ts in rosidl_typesupport_c $TYPESUPPORTS; do
    gcc -std=c11 -shared "${CFLAGS[@]}" "$BUILD/rosidl_generator_py/$PKG/_${PKG}_s.ep.$ts.c" \
        -o "$OUT/py/${PKG}_s__$ts$EXT" "${EXT_RPATH[@]}" -l${PKG}__rosidl_generator_py -l${PKG}__$ts \
        -l${PKG}__rosidl_typesupport_c -l${PKG}__rosidl_generator_c -lrosidl_typesupport_c -lrosidl_runtime_c \
        -lrcutils & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
} >>"$LOG" 2>&1

# ---- install into the prefix, the way the message wheels lay themselves out
cp "$OUT"/lib/*.so "$PREFIX/lib/"
rm -rf "$SITE/$PKG.new"
mkdir -p "$SITE/$PKG.new"
(cd "$BUILD/rosidl_generator_py/$PKG" && find . -name '*.py' -exec cp --parents {} "$SITE/$PKG.new/" \;)
cp "$OUT"/py/*"$EXT" "$SITE/$PKG.new/"
rm -rf "$SITE/$PKG"
mv "$SITE/$PKG.new" "$SITE/$PKG"
rm -rf "$PREFIX/include/$PKG" "$PREFIX/share/$PKG"
mkdir -p "$PREFIX/include/$PKG"
for gen in rosidl_generator_c rosidl_typesupport_fastrtps_c rosidl_typesupport_introspection_c; do
    (cd "$BUILD/$gen" && find "$PKG" -name '*.h' -exec cp --parents {} "$PREFIX/include/$PKG/" \;)
done
mkdir -p "$PREFIX/share/$PKG"
cp "$SRC/package.xml" "$PREFIX/share/$PKG/"
(cd "$SRC" && cp --parents msg/*.msg srv/*.srv "$PREFIX/share/$PKG/")
(cd "$BUILD/rosidl_adapter/$PKG" && cp --parents */*.idl "$PREFIX/share/$PKG/")
(cd "$BUILD/rosidl_generator_type_description/$PKG" && cp --parents */*.json "$PREFIX/share/$PKG/")
INDEX="$PREFIX/share/ament_index/resource_index"
mkdir -p "$INDEX/packages" "$INDEX/rosidl_interfaces"
: > "$INDEX/packages/$PKG"
(cd "$PREFIX/share/$PKG" && ls msg/*.idl msg/*.msg srv/*.idl srv/*.srv) > "$INDEX/rosidl_interfaces/$PKG"
echo "$STAMP" > "$SITE/$PKG/.build_stamp"
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
echo "robotrl_interfaces built in $((MS / 1000)).$((MS % 1000 / 100)) s into $SITE/$PKG (log: ${LOG#$PWD/})"
