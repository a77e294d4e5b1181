package io.shardmap.support.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class TableTest {
  @Test
  void columnsAlignTwoSpacesApartWithoutTrailingBlanks() {
    StringWriter s = new StringWriter();
    PrintWriter out = new PrintWriter(s);
    Table.print(out, List.of("RANGE", "SHARD", "EPOCH"), List.of(List.of("..0", "shard1", "3"),
        List.of("0..", "s2", "")));
    out.flush();
    assertEquals(String.join(System.lineSeparator(), "RANGE  SHARD   EPOCH", "..0    shard1  3", "0..    s2", ""),
        s.toString());
  }

  @Test
  void noRowsPrintsTheHeaderAndARaggedRowIsRefused() {
    StringWriter s = new StringWriter();
    PrintWriter out = new PrintWriter(s);
    Table.print(out, List.of("A", "B"), List.of());
    out.flush();
    assertEquals("A  B" + System.lineSeparator(), s.toString());
    assertThrows(IllegalArgumentException.class, () -> Table.print(out, List.of("A", "B"), List.of(List.of("x"))));
  }

  @Test
  void keyValuesAlign() {
    StringWriter s = new StringWriter();
    PrintWriter out = new PrintWriter(s);
    Map<String, String> m = new LinkedHashMap<>();
    m.put("id", "m1");
    m.put("state", "done");
    Table.keyValues(out, m);
    out.flush();
    assertEquals("id     m1" + System.lineSeparator() + "state  done" + System.lineSeparator(), s.toString());
  }
}
