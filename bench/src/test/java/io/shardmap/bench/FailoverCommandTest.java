package io.shardmap.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.shardmap.testkit.PatroniCluster;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

/**
 * The failover benchmark once with tiny bounds (one SIGKILL round, one writer thread per side) on a real
 * Patroni cluster: both sides write again on the new primary, every write either side acknowledged is there,
 * and the figures are filled in. No timing is asserted; the real runs are manual (docs/benchmarks.md).
 */
@Tag("fault")
@Tag("slow") // minutes: run by `mvn verify -Pslow` and .ci/run, not by the default `mvn verify`
class FailoverCommandTest {
  @Test
  @Timeout(300)
  void oneKillRoundMeasuresBothSidesAndLosesNoAcknowledgedWrite() throws Exception {
    String reason = PatroniCluster.unavailableReason();
    assumeTrue(reason == null, "Patroni cannot run here: " + reason);
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8);
    FailoverCommand c = new FailoverCommand();
    new CommandLine(c).parseArgs("--rounds", "1", "--threads", "1", "--steady-writes", "30", "--after-writes", "30");
    FailoverCommand.Result r = c.run(out);
    String output = buf.toString(StandardCharsets.UTF_8);
    assertEquals(1, r.rounds().size(), output);
    FailoverCommand.Round round = r.rounds().get(0);
    assertNotEquals(round.from(), round.to(), output);
    for (FailoverCommand.Side s : new FailoverCommand.Side[] {round.shardmap(), round.pgjdbc()}) {
      assertTrue(s.recovered(), s.writer() + " wrote again after the failover: " + output);
      assertEquals(0, s.missing(), s.writer() + ": acknowledged writes missing on the new primary: " + output);
      // The outage is the longest gap between acknowledgements that ended after the kill.
      assertTrue(s.killToFirstWrite() > 0 && s.outage() > 0, output);
      assertTrue(s.acknowledged() >= 60, output);
    }
    assertTrue(r.clean(), output);
    assertTrue(output.contains("summary over 1 kill round(s)"), output);
  }
}
