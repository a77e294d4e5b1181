package io.shardmap.support.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** How every Shardmap CLI prints results for people: aligned tables and aligned {@code name  value} lists. */
public final class Table {
  private Table() {}

  /**
   * Prints rows under a header, each column as wide as its widest cell, columns two spaces apart, no
   * trailing blanks. The header alone is printed for no rows, so an empty result is still visible.
   *
   * @throws IllegalArgumentException if a row has not as many cells as the header (nothing is printed)
   */
  public static void print(PrintWriter out, List<String> header, List<List<String>> rows) {
    int[] width = new int[header.size()];
    List<List<String>> all = new ArrayList<>(rows.size() + 1);
    all.add(header);
    all.addAll(rows);
    for (List<String> row : all) {
      if (row.size() != width.length) {
        throw new IllegalArgumentException("row " + row + " has " + row.size() + " cells, header has "
            + width.length);
      }
      for (int i = 0; i < width.length; i++) {
        width[i] = Math.max(width[i], row.get(i).length());
      }
    }
    for (List<String> row : all) {
      StringBuilder b = new StringBuilder();
      for (int i = 0; i < width.length; i++) {
        String cell = row.get(i);
        b.append(cell);
        if (i < width.length - 1) {
          b.append(" ".repeat(width[i] - cell.length() + 2));
        }
      }
      out.println(b.toString().stripTrailing());
    }
  }

  /** Prints one {@code name  value} line per entry, in the map's order, values aligned two spaces after the longest name. */
  public static void keyValues(PrintWriter out, Map<String, String> values) {
    int w = values.keySet().stream().mapToInt(String::length).max().orElse(0);
    values.forEach((k, v) -> out.println(k + " ".repeat(w - k.length() + 2) + v));
  }
}
