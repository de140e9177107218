# Part of scripts/bench.sh: draws a horizontal bar chart as SVG from tab-separated lines
# "measurement<TAB>path<TAB>ratio", one group of bars per measurement, with a line at 1.0.
{
    if (!($1 in seen)) { seen[$1] = 1; groups[++ng] = $1 }
    if (!($2 in pseen)) { pseen[$2] = 1; paths[++np] = $2 }
    v[$1, $2] = $3
    if ($3 + 0 > max) max = $3 + 0
}
END {
    if (max < 1) max = 1
    max *= 1.12
    left = 330; width = 420; bar = 14; gap = 10
    color["direct"] = "#9e9e9e"; color["proxyd"] = "#f0a04b"; color["before"] = "#8fb3d9"; color["relay"] = "#1f5fa8"
    h = 60; for (g = 1; g <= ng; g++) { n = 0; for (p = 1; p <= np; p++) if ((groups[g], paths[p]) in v) n++; h += n * bar + gap }
    h += 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 60, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", title
    y = 40
    for (p = 1; p <= np; p++) {
        printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>", 10 + (p - 1) * 90, y - 10, color[paths[p]] ? color[paths[p]] : "#555"
        printf "<text x=\"%d\" y=\"%d\">%s</text>\n", 26 + (p - 1) * 90, y, paths[p]
    }
    y += 20; top = y
    for (g = 1; g <= ng; g++) {
        first = y
        for (p = 1; p <= np; p++) {
            if (!((groups[g], paths[p]) in v)) continue
            r = v[groups[g], paths[p]]
            printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", left, y, r / max * width, bar - 2, color[paths[p]] ? color[paths[p]] : "#555"
            printf "<text x=\"%.1f\" y=\"%d\">%.2f</text>\n", left + r / max * width + 4, y + bar - 4, r
            y += bar
        }
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, (first + y) / 2 + 4, groups[g]
        y += gap
    }
    x1 = left + 1 / max * width
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n", x1, top - 4, x1, y
    printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">socat = 1.0</text>\n", x1, y + 14
    print "</svg>"
}
