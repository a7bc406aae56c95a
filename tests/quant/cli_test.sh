#!/bin/sh
# frl-infer end to end: a valid model file, single images, and clear errors
# for truncated, corrupted and missing files. Exit 77 (skip) without data.
#   cli_test.sh FRL_INFER MKMODEL WORKDIR
set -u
infer=$1
mk=$2
dir=$3
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    echo "Fashion-MNIST not installed: skipped"
    exit 77
fi
mkdir -p "$dir"
f=$dir/cli_lenet.frlq
fail() {
    echo "FAIL: $*"
    exit 1
}
"$mk" "$f" || fail "mkmodel"
out=$("$infer" "$f" --json --float-agreement --threads 2 --limit 1000) || fail "valid model: exit $?"
echo "$out"
echo "$out" | grep -q '"accuracy_int"' || fail "no accuracy_int in $out"
echo "$out" | grep -q '"agreement"' || fail "no agreement in $out"
out=$("$infer" "$f" --image 0 --image 9999) || fail "--image"
echo "$out"
echo "$out" | grep -q "image 9999: predicted" || fail "--image output"
"$infer" "$f" --image 10000 >/dev/null 2>&1 && fail "image out of range accepted"
for p in scalar avx2 avx512; do
    a=$("$infer" "$f" --path $p --image 3 --json 2>/dev/null) || continue
    b=$("$infer" "$f" --path scalar --image 3 --json)
    [ "$a" = "$b" ] || fail "path $p logits differ: $a vs $b"
done
head -c 100000 "$f" >"$dir/trunc.frlq"
"$infer" "$dir/trunc.frlq" 2>"$dir/err" && fail "truncated file accepted"
grep -q "truncated" "$dir/err" || fail "truncated: $(cat "$dir/err")"
cp "$f" "$dir/bad.frlq"
printf '\377' | dd of="$dir/bad.frlq" bs=1 seek=150000 conv=notrunc 2>/dev/null
"$infer" "$dir/bad.frlq" 2>"$dir/err" && fail "corrupted file accepted"
grep -q "checksum" "$dir/err" || fail "corrupted: $(cat "$dir/err")"
"$infer" "$dir/missing.frlq" 2>"$dir/err" && fail "missing file accepted"
grep -q "no such file" "$dir/err" || fail "missing: $(cat "$dir/err")"
"$infer" >/dev/null 2>&1
[ $? -eq 2 ] || fail "usage error should exit 2"
echo "cli ok"
