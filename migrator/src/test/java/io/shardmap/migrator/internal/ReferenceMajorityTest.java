package io.shardmap.migrator.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.migrator.internal.ReferenceVerifier.Want;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@link ReferenceVerifier#want}: which version of a key every copy should get (no servers). */
@Tag("unit")
class ReferenceMajorityTest {
  /** Shards s1.. holding the given versions in order; null is "no row". */
  static Map<String, Long> copies(Long... versions) {
    Map<String, Long> m = new HashMap<>();
    for (int i = 0; i < versions.length; i++) {
      m.put("s" + (i + 1), versions[i]);
    }
    return m;
  }

  static final Want UNRESOLVED = new Want(false, null);

  @Test
  void aStrictMajorityWins() {
    assertEquals(new Want(true, 7L), ReferenceVerifier.want(copies(7L, 7L, 8L), null));
    assertEquals(new Want(true, 7L), ReferenceVerifier.want(copies(7L, 7L, null), null));
    assertEquals(new Want(true, 7L), ReferenceVerifier.want(copies(7L, 7L, 7L, 1L, 2L), null));
    assertEquals(new Want(true, 7L), ReferenceVerifier.want(copies(7L), null));
  }

  @Test
  void noRowIsAVersionToo() {
    assertEquals(new Want(true, null), ReferenceVerifier.want(copies(null, null, 8L), null));
    assertEquals(new Want(true, null), ReferenceVerifier.want(copies(null, null, null, 8L, 8L), null));
  }

  @Test
  void aTieOrAPluralityIsNoMajority() {
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, 8L), null));
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, null), null));
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, 8L, 9L), null));
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, 7L, 8L, 8L), null));
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, 7L, null, null), null));
    assertEquals(UNRESOLVED, ReferenceVerifier.want(copies(7L, 7L, 8L, 9L, null), null));
  }

  @Test
  void aNamedSourceWinsEvenAlone() {
    assertEquals(new Want(true, 9L), ReferenceVerifier.want(copies(7L, 7L, 9L), "s3"));
    assertEquals(new Want(true, null), ReferenceVerifier.want(copies(7L, 7L, null), "s3"));
    assertThrows(IllegalArgumentException.class, () -> ReferenceVerifier.want(copies(7L, 7L), "s9"));
  }
}
