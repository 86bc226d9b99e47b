# Self cost (first event, Ir) per function of a callgrind dump, largest first:
#   awk -f bench/proxy/callgrind-self.awk callgrind.out | sort -t '	' -k1,1 -rn | head
# Output lines: <Ir> TAB <function> [<object file name>]. The last line, "TOTAL", is the sum, which
# equals the dump's summary: line when every cost line was read.
# (callgrind_annotate 3.19 prints inclusive figures even with --inclusive=no for these dumps;
# this reads the format directly: cost lines after fn= are self cost, the cost line that follows
# a calls= line is the inclusive cost of that call and is skipped.)
function name(spec, table,    id, rest) {
    # "(12) name" defines id 12, "(12)" refers to it, "name" is uncompressed
    if (spec ~ /^\([0-9]+\)/) {
        id = substr(spec, 2, index(spec, ")") - 2)
        rest = substr(spec, index(spec, ")") + 1)
        sub(/^ /, "", rest)
        if (rest != "") table[id] = rest
        return table[id]
    }
    return spec
}
/^ob=/ { ob = name(substr($0, 4), objects); n = split(ob, parts, "/"); obname = parts[n]; next }
/^cob=/ { name(substr($0, 5), objects); next }
/^fn=/ { fn = name(substr($0, 4), functions) " [" obname "]"; next }
/^cfn=/ { name(substr($0, 5), functions); next }
/^calls=/ { skip = 1; next }
/^[0-9+*-]/ {
    if (skip) { skip = 0; next }
    self[fn] += $2
    total += $2
    next
}
END {
    for (f in self) if (self[f] > 0) printf "%d\t%s\n", self[f], f
    printf "%d\tTOTAL\n", total
}
