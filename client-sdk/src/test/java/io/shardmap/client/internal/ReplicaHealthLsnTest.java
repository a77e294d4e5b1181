package io.shardmap.client.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@code pg_lsn} texts as {@link ReplicaHealth} compares them: 64-bit positions, high word before the slash. */
@Tag("unit")
class ReplicaHealthLsnTest {
  @Test
  void parsesBothHalvesInHex() {
    assertEquals(0x16B374D848L, ReplicaHealth.parseLsn("16/B374D848"));
    assertEquals(0L, ReplicaHealth.parseLsn("0/0"));
    assertEquals(-1L, ReplicaHealth.parseLsn("FFFFFFFF/FFFFFFFF"), "the top position is all ones");
  }

  @Test
  void ordersAcrossTheWordBoundaryAndTheSignBit() {
    assertTrue(Long.compareUnsigned(ReplicaHealth.parseLsn("0/FFFFFFFF"), ReplicaHealth.parseLsn("1/0")) < 0);
    assertTrue(Long.compareUnsigned(ReplicaHealth.parseLsn("7FFFFFFF/FFFFFFFF"),
        ReplicaHealth.parseLsn("80000000/0")) < 0);
  }
}
