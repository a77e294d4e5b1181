package io.shardmap.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The load accounting options: defaults, bounds, and errors that name the option and its rule. */
@Tag("unit")
class ClientOptionsLoadTest {
  static ClientOptions.Builder base() {
    return ClientOptions.builder().targets("127.0.0.1:1").keyspaces("users");
  }

  @Test
  void defaults() {
    ClientOptions o = base().build();
    assertTrue(o.loadAccounting());
    assertEquals(1024, o.loadSlots());
    assertEquals(64, o.loadSampleEvery());
  }

  @Test
  void boundsAreInclusive() {
    ClientOptions o = base().loadAccounting(false).loadSlots(16).loadSampleEvery(1).build();
    assertFalse(o.loadAccounting());
    assertEquals(16, o.loadSlots());
    assertEquals(1, o.loadSampleEvery());
    o = base().loadSlots(65536).loadSampleEvery(1_000_000).build();
    assertEquals(65536, o.loadSlots());
    assertEquals(1_000_000, o.loadSampleEvery());
  }

  @Test
  void outOfRangeIsRefusedNamingTheOption() {
    for (int bad : new int[] {15, 65537, 0, -1}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> base().loadSlots(bad));
      assertEquals("loadSlots: must be 16 to 65536, got " + bad, e.getMessage());
    }
    for (int bad : new int[] {0, -5, 1_000_001}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> base().loadSampleEvery(bad));
      assertTrue(e.getMessage().startsWith("loadSampleEvery: must be 1 to 1000000"), e.getMessage());
      assertTrue(e.getMessage().endsWith("got " + bad), e.getMessage());
    }
  }
}
