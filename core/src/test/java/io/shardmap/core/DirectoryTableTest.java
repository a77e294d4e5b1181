package io.shardmap.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.shardmap.proto.v1.DirectoryLayout;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("unit")
class DirectoryTableTest {

  private static byte[] k(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static Route r(String shard, long epoch) {
    return new Route(shard, epoch, null, 0);
  }

  private static final DirectoryLayout NO_FALLBACK = DirectoryLayout.getDefaultInstance();

  @Test
  void putsRemovesAndFallback() {
    DirectoryTable empty = DirectoryTable.empty(NO_FALLBACK, 0);
    assertEquals(0, empty.size());
    assertNull(empty.route(k("x")), "no entry and no fallback: null");
    assertNull(empty.fallback());

    Map<byte[], Route> puts = new IdentityHashMap<>();
    puts.put(k("alice"), r("s1", 1));
    puts.put(k("bob"), r("s2", 1));
    DirectoryTable t = empty.apply(List.of(), puts);
    assertEquals(2, t.size());
    assertEquals("s1", t.route(k("alice")).shard());
    assertEquals("s2", t.entry(k("bob")).shard());
    assertNull(t.route(k("carol")));

    DirectoryTable t2 = t.apply(List.of(k("alice"), k("nobody")), Map.of(k("bob"), r("s3", 2)));
    assertEquals(1, t2.size(), "removing a missing key does not change the size; replacing does not grow it");
    assertNull(t2.route(k("alice")));
    assertEquals(new Route("s3", 2, null, 0), t2.route(k("bob")));

    DirectoryTable withFallback = t2.withLayout(
        DirectoryLayout.newBuilder().setFallbackShard("fb").setFallbackEpoch(4).build(), 77);
    assertEquals(new Route("fb", 4, null, 77), withFallback.route(k("alice")), "missing key goes to the fallback");
    assertEquals("s3", withFallback.route(k("bob")).shard(), "an entry beats the fallback");
    assertNull(withFallback.entry(k("alice")), "entry() ignores the fallback");
    assertEquals(1, withFallback.size(), "a layout change keeps the entries");
    assertEquals("fb", withFallback.apply(List.of(), Map.of(k("z"), r("s1", 1))).fallback().shard(),
        "apply keeps the fallback");
  }

  @Test
  void putWinsOverRemovalOfTheSameKeyInOneBatch() {
    DirectoryTable t = DirectoryTable.empty(NO_FALLBACK, 0).apply(List.of(), Map.of(k("a"), r("s1", 1)));
    DirectoryTable t2 = t.apply(List.of(k("a")), Map.of(k("a"), r("s2", 2)));
    assertEquals("s2", t2.route(k("a")).shard());
    assertEquals(1, t2.size());
  }

  @Test
  void oldTableIsUnchangedAfterApply() {
    Random rnd = new Random(6);
    DirectoryTable t = DirectoryTable.empty(NO_FALLBACK, 0);
    Map<String, Route> model = new HashMap<>();
    List<DirectoryTable> versions = new ArrayList<>();
    List<Map<String, Route>> models = new ArrayList<>();
    for (int step = 0; step < 200; step++) {
      Map<byte[], Route> puts = new IdentityHashMap<>();
      List<byte[]> removed = new ArrayList<>();
      Set<String> touched = new HashSet<>();
      for (int i = 0; i < 20; i++) {
        String key = "k" + rnd.nextInt(500);
        if (!touched.add(key)) {
          continue;
        }
        if (rnd.nextInt(3) == 0) {
          removed.add(k(key));
          model.remove(key);
        } else {
          Route route = r("s" + rnd.nextInt(4), step);
          puts.put(k(key), route);
          model.put(key, route);
        }
      }
      t = t.apply(removed, puts);
      versions.add(t);
      models.add(new HashMap<>(model));
    }
    for (int v = 0; v < versions.size(); v++) {
      DirectoryTable table = versions.get(v);
      Map<String, Route> m = models.get(v);
      assertEquals(m.size(), table.size(), "size of version " + v);
      for (int i = 0; i < 500; i++) {
        assertEquals(m.get("k" + i), table.route(k("k" + i)), "version " + v + " key k" + i);
      }
      Map<String, Route> seen = new HashMap<>();
      table.forEach((key, route) -> seen.put(new String(key, StandardCharsets.UTF_8), route));
      assertEquals(m, seen, "forEach of version " + v);
    }
  }

  @Test
  void pagesCoverEveryEntryExactlyOnce() {
    Map<byte[], Route> puts = new IdentityHashMap<>();
    int n = 10_000;
    for (int i = 0; i < n; i++) {
      puts.put(ByteBuffer.allocate(8).putLong(i).array(), r("s" + (i % 7), i));
    }
    DirectoryTable t = DirectoryTable.empty(NO_FALLBACK, 0).apply(List.of(), puts);
    assertEquals(n, t.size());
    List<byte[]> order = new ArrayList<>();
    t.forEach((key, route) -> order.add(key));
    assertEquals(n, order.size(), "forEach visits every entry");
    for (int pageSize : new int[] {1, 3, 7, 100, 999, 4096, 10_000, 10_001, 100_000}) {
      if (pageSize == 1 && n > 2_000) {
        // page() scans from the start each time; check single-entry pages on a prefix and at the end only.
        for (long off : new long[] {0, 1, 2, 4095, 4096, n - 2, n - 1}) {
          List<Map.Entry<byte[], Route>> p = t.page(off, 1);
          assertEquals(1, p.size(), "page(" + off + ", 1)");
          assertArrayEquals(order.get((int) off), p.get(0).getKey(), "page(" + off + ", 1) follows forEach order");
        }
        assertTrue(t.page(n, 1).isEmpty(), "a page past the end is empty");
        continue;
      }
      Set<Long> seen = new HashSet<>();
      long offset = 0;
      int pages = 0;
      while (true) {
        List<Map.Entry<byte[], Route>> page = t.page(offset, pageSize);
        assertTrue(page.size() <= pageSize, "page larger than its limit " + pageSize);
        for (int j = 0; j < page.size(); j++) {
          Map.Entry<byte[], Route> e = page.get(j);
          long id = ByteBuffer.wrap(e.getKey()).getLong();
          assertTrue(seen.add(id), "page size " + pageSize + ": entry " + id + " returned twice");
          assertEquals(t.route(e.getKey()), e.getValue(), "page entry's route");
          assertArrayEquals(order.get((int) (offset + j)), e.getKey(), "pages follow forEach order");
        }
        pages++;
        if (page.size() < pageSize) {
          break;
        }
        offset += page.size();
      }
      assertEquals(n, seen.size(), "page size " + pageSize + ": every entry exactly once");
      assertEquals((n + pageSize) / pageSize, pages, "page size " + pageSize + ": page count");
    }
    assertTrue(t.page(n + 5L, 10).isEmpty());
  }

  @Test
  void manyEntriesAcrossAllChunks() {
    Random rnd = new Random(13);
    Map<byte[], Route> puts = new IdentityHashMap<>();
    List<byte[]> keys = new ArrayList<>();
    for (int i = 0; i < 50_000; i++) {
      byte[] key = TestData.randomBytes(rnd, 1 + rnd.nextInt(30));
      keys.add(key);
      puts.put(key, r("s1", i));
    }
    DirectoryTable t = DirectoryTable.empty(NO_FALLBACK, 0).apply(List.of(), puts);
    Set<String> distinct = new HashSet<>();
    for (byte[] key : keys) {
      distinct.add(Keys.hex(key));
    }
    assertEquals(distinct.size(), t.size());
    for (byte[] key : keys) {
      // Lookups use a fresh array with equal content, not the stored instance.
      assertTrue(t.route(key.clone()) != null, "entry 0x" + Keys.hex(key) + " is missing");
    }
    DirectoryTable emptied = t.apply(keys, Map.of());
    assertEquals(0, emptied.size());
    assertEquals(distinct.size(), t.size(), "the old table keeps its entries");
    assertSame(null, emptied.route(keys.get(0)));
  }
}
