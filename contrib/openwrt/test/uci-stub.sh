# shellcheck shell=sh
# uci-stub.sh: a small stand-in for the part of OpenWrt's /lib/functions.sh that uci2toml.sh
# uses (config_load, config_get, config_get_bool, config_foreach, config_list_foreach), so the
# UCI → TOML translation can be tested on any Linux. Written from the documented behaviour of
# those functions, not from OpenWrt's code. Sourced, never run.
#
# config_load PACKAGE reads "${UCI_CONFIG_DIR:-/etc/config}/PACKAGE" in UCI's file syntax:
#   package NAME                      (ignored)
#   config TYPE ['NAME']              a section; unnamed ones are called cfg01, cfg02, …
#   option NAME 'VALUE'               a single value
#   list NAME 'VALUE'                 one more item of a list
# with 'single quotes' (literal), "double quotes" (backslash escapes the next character),
# bare words, backslash escapes outside quotes, adjacent pieces joined ('it'\''s'), and #
# comments. A bad line makes config_load fail with file:line on stderr.
#
# The parsed config lives in UCI_STUB_DB, one record per line, fields separated by a tab:
#   S <section> <type>  |  O <section> <option> <value>  |  L <section> <option> <value>
# values with backslashes written \\ and tabs \t (decoded with printf %b, which knows no others
# once every backslash is doubled).

UCI_STUB_DB=''
uci_stub_tab=$(printf '\t')

config_load() {
    uci_stub_file="${UCI_CONFIG_DIR:-/etc/config}/$1"
    if [ ! -r "$uci_stub_file" ]; then
        echo "uci-stub: cannot read $uci_stub_file" >&2
        return 1
    fi
    UCI_STUB_DB=$(awk '
        function fail(msg) { printf "uci-stub: %s:%d: %s\n", FILENAME, NR, msg > "/dev/stderr"; bad = 1 }
        function esc(s,    out, i, c) {
            out = ""
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                if (c == "\\") out = out "\\\\"; else if (c == "\t") out = out "\\t"; else out = out c
            }
            return out
        }
        function name_ok(s) { return s ~ /^[A-Za-z0-9_]+$/ }
        # Splits line into tok[1..n]; returns n, or -1 for an unterminated quote.
        function tokenize(line,    n, i, L, c, cur, intok, j) {
            n = 0; cur = ""; intok = 0; i = 1; L = length(line)
            while (i <= L) {
                c = substr(line, i, 1)
                if (c == " " || c == "\t") {
                    if (intok) { tok[++n] = cur; cur = ""; intok = 0 }
                    i++; continue
                }
                if (c == "#" && !intok) break
                if (c == "\047") {
                    j = index(substr(line, i + 1), "\047")
                    if (j == 0) return -1
                    cur = cur substr(line, i + 1, j - 1); intok = 1; i += j + 1; continue
                }
                if (c == "\"") {
                    i++; intok = 1
                    while (i <= L) {
                        c = substr(line, i, 1)
                        if (c == "\\" && i < L) { cur = cur substr(line, i + 1, 1); i += 2; continue }
                        if (c == "\"") break
                        cur = cur c; i++
                    }
                    if (i > L) return -1
                    i++; continue
                }
                if (c == "\\" && i < L) { cur = cur substr(line, i + 1, 1); intok = 1; i += 2; continue }
                cur = cur c; intok = 1; i++
            }
            if (intok) tok[++n] = cur
            return n
        }
        {
            n = tokenize($0)
            if (n < 0) { fail("unterminated quote"); next }
            if (n == 0) next
            kw = tok[1]
            if (kw == "package") next
            if (kw == "config") {
                if (n < 2 || n > 3 || !name_ok(tok[2])) { fail("expected: config TYPE [NAME]"); next }
                if (n == 3) {
                    if (!name_ok(tok[3])) { fail("bad section name \047" tok[3] "\047"); next }
                    sec = tok[3]
                } else {
                    sec = sprintf("cfg%02x", ++anon)
                }
                print "S\t" sec "\t" tok[2]
                next
            }
            if (kw == "option" || kw == "list") {
                if (sec == "") { fail(kw " before any config line"); next }
                if (n != 3 || !name_ok(tok[2])) { fail("expected: " kw " NAME VALUE"); next }
                print (kw == "option" ? "O" : "L") "\t" sec "\t" tok[2] "\t" esc(tok[3])
                next
            }
            fail("unknown keyword \047" kw "\047")
        }
        END { exit bad }
    ' "$uci_stub_file") || return 1
}

# The decoded values of one option of one section, one per line (several for a list).
uci_stub_values() { # section option
    while IFS="$uci_stub_tab" read -r uci_stub_k uci_stub_s uci_stub_o uci_stub_v; do
        if [ "$uci_stub_k" != S ] && [ "$uci_stub_s" = "$1" ] && [ "$uci_stub_o" = "$2" ]; then
            printf '%b\n' "$uci_stub_v"
        fi
    done <<EOF
$UCI_STUB_DB
EOF
}

# config_get VAR SECTION OPTION [DEFAULT], or config_get SECTION OPTION to print. A list comes
# back as its items joined by spaces, as on OpenWrt.
config_get() {
    if [ "$#" -eq 2 ]; then
        uci_stub_var=''
        set -- '' "$1" "$2"
    else
        uci_stub_var=$1
        case $uci_stub_var in
            '' | [!A-Za-z_]* | *[!A-Za-z0-9_]*)
                echo "uci-stub: config_get: bad variable name '$uci_stub_var'" >&2
                return 1
                ;;
        esac
    fi
    uci_stub_vals=$(uci_stub_values "$2" "$3")
    uci_stub_val=''
    if [ -n "$uci_stub_vals" ]; then
        while IFS= read -r uci_stub_line; do
            uci_stub_val="${uci_stub_val:+$uci_stub_val }$uci_stub_line"
        done <<EOF
$uci_stub_vals
EOF
    fi
    # Empty counts as unset, as with OpenWrt's ${…:-default}.
    [ -n "$uci_stub_val" ] || uci_stub_val=${4-}
    if [ -z "$uci_stub_var" ]; then
        printf '%s\n' "$uci_stub_val"
    else
        # read assigns to the variable named in $uci_stub_var, without eval.
        # shellcheck disable=SC2229
        IFS= read -r "$uci_stub_var" <<EOF
$uci_stub_val
EOF
    fi
}

# config_get_bool VAR SECTION OPTION [DEFAULT]: 1 or 0; unknown spellings give the default.
config_get_bool() {
    config_get uci_stub_b "$2" "$3" "${4-}"
    case $uci_stub_b in
        1 | yes | on | true | enabled) uci_stub_b=1 ;;
        0 | no | off | false | disabled) uci_stub_b=0 ;;
        *) uci_stub_b=${4-} ;;
    esac
    IFS= read -r "$1" <<EOF
$uci_stub_b
EOF
}

# config_foreach FUNCTION [TYPE [ARGS…]]: FUNCTION SECTION ARGS… for each section (of TYPE).
config_foreach() {
    uci_stub_fn=$1
    uci_stub_type=${2-}
    shift
    [ "$#" -eq 0 ] || shift
    uci_stub_secs=$(printf '%s\n' "$UCI_STUB_DB" | awk -F "$uci_stub_tab" -v t="$uci_stub_type" \
        '$1 == "S" && (t == "" || $3 == t) { print $2 }')
    # Section names are [A-Za-z0-9_]+, so word splitting is safe here.
    for uci_stub_sec in $uci_stub_secs; do
        "$uci_stub_fn" "$uci_stub_sec" "$@"
    done
}

# config_list_foreach SECTION OPTION FUNCTION [ARGS…]: FUNCTION ITEM ARGS… for each list item.
# An `option` (not a list) yields nothing, as on OpenWrt.
config_list_foreach() {
    uci_stub_lsec=$1
    uci_stub_lopt=$2
    uci_stub_lfn=$3
    shift 3
    uci_stub_items=$(printf '%s\n' "$UCI_STUB_DB" | awk -F "$uci_stub_tab" -v s="$uci_stub_lsec" -v o="$uci_stub_lopt" \
        '$1 == "L" && $2 == s && $3 == o { print $4 }')
    [ -n "$uci_stub_items" ] || return 0
    while IFS= read -r uci_stub_item; do
        "$uci_stub_lfn" "$(printf '%b' "$uci_stub_item")" "$@"
    done <<EOF
$uci_stub_items
EOF
}
