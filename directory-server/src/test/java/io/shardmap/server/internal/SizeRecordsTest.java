package io.shardmap.server.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.ShardSize;
import io.shardmap.proto.v1.UnitSize;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.KeyValue;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Sizes in etcd: chunks bounded in bytes whatever the unit count, and one set replacing the last. */
@Tag("unit")
class SizeRecordsTest {
  /** {@code units} INT64 ranges of one row each, over two shards, taken at {@code taken}. */
  static KeyspaceSizes sizes(int units, long taken) {
    KeyspaceSizes.Builder b = KeyspaceSizes.newBuilder().setKeyspace("ks").setTakenUnixMs(taken).setLayoutRevision(3);
    for (int i = 0; i < units; i++) {
      b.addUnits(UnitSize.newBuilder()
          .setStart(i == 0 ? ByteString.EMPTY : ByteString.copyFrom(Keys.encodeInt64(i * 1000L)))
          .setEnd(i == units - 1 ? ByteString.EMPTY : ByteString.copyFrom(Keys.encodeInt64((i + 1) * 1000L)))
          .setShard(i % 2 == 0 ? "shard-a" : "shard-b").setRows(1_000_000L + i).setBytes(80_000_000L + i));
    }
    b.addShards(ShardSize.newBuilder().setShard("shard-a").setRows(1).setBytes(2));
    b.addShards(ShardSize.newBuilder().setShard("shard-b").setRows(-1).setBytes(-1));
    return b.build();
  }

  @Test
  void a100000RangeMapIsSplitIntoChunksWellUnderEtcdsLimitAndJoinedBack() {
    KeyspaceSizes s = sizes(100_000, 1);
    List<KeyspaceSizes> parts = SizeRecords.split(s, SizeRecords.CHUNK_BYTES);
    assertEquals(0, parts.get(0).getUnitsCount(), "the head has no units");
    assertEquals(s.getShardsList(), parts.get(0).getShardsList());
    for (KeyspaceSizes p : parts) {
      assertTrue(p.getSerializedSize() < SizeRecords.CHUNK_BYTES + 1024, "a chunk of " + p.getSerializedSize());
    }
    long total = parts.stream().mapToLong(KeyspaceSizes::getSerializedSize).sum();
    assertTrue(parts.size() >= total / SizeRecords.CHUNK_BYTES, parts.size() + " parts for " + total + " bytes");
    assertEquals(s, SizeRecords.join(parts.get(0), parts.subList(1, parts.size())));
  }

  @Test
  void aNewSetReplacesTheLastAndDeletesItsChunks() throws Exception {
    InMemoryMetaStore store = new InMemoryMetaStore();
    CatalogPaths paths = new CatalogPaths("/t");
    SizeRecords records = new SizeRecords(store, paths, Duration.ofSeconds(5), System::nanoTime, new ServerMetrics());
    assertTrue(records.read("ks").isEmpty());
    KeyspaceSizes first = sizes(20_000, 1000);
    assertTrue(records.write(first));
    assertEquals(first, records.read("ks").orElseThrow());
    KeyspaceSizes second = sizes(30_000, 2000);
    assertTrue(records.write(second));
    assertEquals(second, records.read("ks").orElseThrow());
    List<KeyValue> chunks = store.getPrefix(paths.sizesUnitsPrefix("ks")).get(5, TimeUnit.SECONDS).kvs();
    assertTrue(chunks.size() > 1);
    for (KeyValue kv : chunks) {
      assertTrue(kv.key().startsWith(paths.sizesUnitsPrefix("ks", 2000)), "the first set's chunks are gone: " + kv.key());
      assertTrue(kv.value().length < 2 * SizeRecords.CHUNK_BYTES);
    }
    assertEquals(List.of(second.toBuilder().clearUnits().build()),
        records.heads().stream().map(SizeRecords.Head::sizes).toList());
    // Sizes taken over a head since replaced do not replace the newer one.
    long headRevision = records.heads().get(0).modRevision();
    assertTrue(!records.write(sizes(10, 2500), headRevision - 1));
    assertEquals(second, records.read("ks").orElseThrow());
    // A set without units (no owner could be read) reads back as it is.
    KeyspaceSizes none = KeyspaceSizes.newBuilder().setKeyspace("ks").setTakenUnixMs(3000)
        .addShards(ShardSize.newBuilder().setShard("shard-a").setRows(-1).setBytes(-1)).build();
    assertTrue(records.write(none));
    assertEquals(none, records.read("ks").orElseThrow());
    assertEquals(0, store.getPrefix(paths.sizesUnitsPrefix("ks")).get(5, TimeUnit.SECONDS).kvs().size());
  }
}
