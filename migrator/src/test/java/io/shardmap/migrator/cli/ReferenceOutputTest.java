package io.shardmap.migrator.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.shardmap.migrator.ReferenceCheck;
import io.shardmap.migrator.ReferenceCheck.Copy;
import io.shardmap.migrator.ReferenceCheck.KeyDiff;
import io.shardmap.migrator.ReferenceCheck.Kind;
import io.shardmap.migrator.ReferenceCheck.Progress;
import io.shardmap.migrator.ReferenceCheck.Unresolved;
import io.shardmap.migrator.ReferenceRepair;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The reports and progress lines of {@code reference verify/repair}, on made-up results (no servers). */
@Tag("unit")
class ReferenceOutputTest {
  static final ReferenceCheck DIFFERING = new ReferenceCheck("public.\"odd\"\"name\"",
      List.of(new Copy("s1", 2, 10, "-5", 0, 0, 0), new Copy("s2", 2, 10, "7", 0, 0, 3),
          new Copy("s3", 2, 9, "-9", 1, 0, 0)),
      false, List.of(new KeyDiff("s2", "(1)", Kind.CHANGED), new KeyDiff("s3", "(\"a,b\")", Kind.MISSING)),
      List.of(), 0, 16, 2, 31);

  @Test
  void theTextReportNamesTheAgreeingCopiesAndWhatIsNotListed() {
    StringWriter w = new StringWriter();
    ReferenceOutput.printCheck(new PrintWriter(w, true), DIFFERING, "agreeing with the majority");
    String out = w.toString();
    assertTrue(out.startsWith("public.\"odd\"\"name\": the 3 copies differ; agreeing with the majority: s1\n"), out);
    assertTrue(out.contains("  s2  (1)  changed\n  s3  (\"a,b\")  missing\n  s2  ... and 2 more keys\n"), out);
    assertTrue(out.contains("differing keys (2 buckets of 16 differed; 31 rows compared by key):"), out);
  }

  @Test
  void aKeyWithoutMajorityMeansNoCopyAgrees() {
    ReferenceCheck r = new ReferenceCheck("public.t", DIFFERING.copies(), false, List.of(),
        List.of(new Unresolved("(5)", Map.of("s2", "v2", "s1", "v1", "s3", "absent"))), 3, 16, 1, 3);
    assertEquals(List.of(), r.agreeing());
    StringWriter w = new StringWriter();
    ReferenceOutput.printCheck(new PrintWriter(w, true), r, "agreeing with the majority");
    assertTrue(w.toString().contains("(3 keys without a majority); agreeing with the majority: none"), w.toString());
    assertTrue(w.toString().contains("  (5)  s1=v1 s2=v2 s3=absent\n  ... and 2 more keys\n"), w.toString());
  }

  @Test
  void theJsonIsValidAndEscapesNames() {
    JsonObject o = JsonParser.parseString(ReferenceOutput.json(DIFFERING)).getAsJsonObject();
    assertEquals("public.\"odd\"\"name\"", o.get("table").getAsString());
    assertEquals("(\"a,b\")", o.getAsJsonArray("differences").get(1).getAsJsonObject().get("key").getAsString());
    assertEquals(3, o.getAsJsonArray("copies").get(1).getAsJsonObject().get("changed").getAsInt());
    ReferenceRepair dry = new ReferenceRepair("public.t", null, true, DIFFERING,
        List.of(new ReferenceRepair.Change("s2", 0, 3, 0)), null);
    JsonObject d = JsonParser.parseString(ReferenceOutput.json(dry)).getAsJsonObject();
    assertTrue(d.get("source").isJsonNull());
    assertTrue(d.get("after").isJsonNull());
    assertEquals(3, d.getAsJsonArray("changes").get(0).getAsJsonObject().get("updated").getAsInt());
    assertEquals("\"\\u0001\\t\\n\\\\\"", ReferenceOutput.str("\u0001\t\n\\"));
  }

  @Test
  void linesModeWritesAStepsFirstAndLastLineAndAtMostOneEveryFiveSecondsBetween() {
    StringWriter w = new StringWriter();
    long[] now = {0};
    Consumer<Progress> p = ReferenceOutput.progress(new PrintWriter(w, true), io.shardmap.migrator.cli.Progress.Mode.LINES, () -> now[0]);
    p.accept(new Progress("repair s1", 500, 2000, 2000));
    now[0] = 1_000;
    p.accept(new Progress("repair s1", 1000, 2000, 2000));
    now[0] = 5_000;
    p.accept(new Progress("repair s1", 1500, 2000, 2000));
    now[0] = 5_100;
    p.accept(new Progress("repair s1", 2000, 2000, 2000));
    assertEquals(List.of("repair s1 500 of 2,000 rows written", "repair s1 1,500 of 2,000 rows written",
        "repair s1 2,000 of 2,000 rows written"), w.toString().lines().toList());
  }
}
