package io.shardmap.support.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class ExitCodeTest {
  @Test
  void theNumbersAreTheDocumentedOnesAndEachMeansOneThing() {
    assertEquals(0, ExitCode.OK.code());
    assertEquals(1, ExitCode.OTHER.code());
    assertEquals(2, ExitCode.USAGE.code());
    assertEquals(3, ExitCode.NOT_FOUND.code());
    assertEquals(4, ExitCode.REFUSED.code());
    assertEquals(5, ExitCode.UNAVAILABLE.code());
    assertEquals(6, ExitCode.CANCELLED.code());
    assertEquals(7, ExitCode.ABORTED.code());
    assertEquals(8, ExitCode.DIFFERENT.code());
    assertEquals(130, ExitCode.INTERRUPTED.code());
    assertEquals(143, ExitCode.TERMINATED.code());
    Set<Integer> numbers = new HashSet<>();
    Arrays.stream(ExitCode.values()).forEach(c -> assertTrue(numbers.add(c.code()), c + " reuses a number"));
  }

  @Test
  void statusCodesMapByName() {
    assertEquals(ExitCode.OK, ExitCode.ofStatus("OK"));
    assertEquals(ExitCode.USAGE, ExitCode.ofStatus("INVALID_ARGUMENT"));
    assertEquals(ExitCode.USAGE, ExitCode.ofStatus("OUT_OF_RANGE"));
    assertEquals(ExitCode.NOT_FOUND, ExitCode.ofStatus("NOT_FOUND"));
    assertEquals(ExitCode.REFUSED, ExitCode.ofStatus("ALREADY_EXISTS"));
    assertEquals(ExitCode.REFUSED, ExitCode.ofStatus("FAILED_PRECONDITION"));
    assertEquals(ExitCode.UNAVAILABLE, ExitCode.ofStatus("UNAVAILABLE"));
    assertEquals(ExitCode.UNAVAILABLE, ExitCode.ofStatus("DEADLINE_EXCEEDED"));
    assertEquals(ExitCode.ABORTED, ExitCode.ofStatus("ABORTED"));
    for (String other : new String[] {"UNKNOWN", "INTERNAL", "PERMISSION_DENIED", "CANCELLED", "nonsense"}) {
      assertEquals(ExitCode.OTHER, ExitCode.ofStatus(other), other);
    }
  }

  @Test
  void signals() {
    assertEquals(ExitCode.INTERRUPTED, ExitCode.ofSignal(2));
    assertEquals(ExitCode.TERMINATED, ExitCode.ofSignal(15));
    assertThrows(IllegalArgumentException.class, () -> ExitCode.ofSignal(9));
  }

  @Test
  void theFooterListsTheCodesGiven() {
    String[] f = ExitCode.footer(ExitCode.OK, ExitCode.REFUSED, ExitCode.OTHER);
    assertEquals(4, f.length);
    assertEquals("Exit codes:", f[0]);
    assertEquals("  0   done", f[1]);
    assertTrue(f[2].startsWith("  4   ALREADY_EXISTS or FAILED_PRECONDITION"), f[2]);
    assertEquals("  1   anything else", f[3]);
  }
}
