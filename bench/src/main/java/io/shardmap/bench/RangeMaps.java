package io.shardmap.bench;

import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.Endpoint;
import io.shardmap.proto.v1.Key;
import io.shardmap.proto.v1.KeyRange;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.ShardedTable;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.catalog.ChangeDecoder;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.Txn;
import io.shardmap.store.TxnResult;
import io.shardmap.store.WatchEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Builds the large INT64 range maps the micro-benchmarks and the heap measurement use, the way a directory
 * server builds them: from etcd records through {@link io.shardmap.catalog.ChangeDecoder#toChanges} and
 * {@link DirectorySnapshot#apply}. Going through the stored bytes matters for memory: every parsed record
 * carries its own shard-name String, as in a real server, where a hand-built map would share one.
 */
public final class RangeMaps {
  public static final String KEYSPACE = "bench";
  public static final String PREFIX = "/shardmap";
  public static final CatalogPaths PATHS = new CatalogPaths(PREFIX);
  public static final ChangeDecoder DECODER = new ChangeDecoder(PATHS);
  /** The etcd revision every loaded record carries; splits are applied at the next one. */
  public static final long LOAD_REVISION = 10;

  private RangeMaps() {}

  public static KeyspaceSpec spec(String name) {
    return KeyspaceSpec.newBuilder().setName(name).setKeyType(KeyType.KEY_TYPE_INT64)
        .setStrategy(Strategy.STRATEGY_RANGE)
        .addTables(ShardedTable.newBuilder().setName("users").setKeyColumn("user_id")).build();
  }

  public static List<String> shardNames(int n) {
    List<String> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      out.add(String.format("pg-%02d", i));
    }
    return out;
  }

  /** A shard whose endpoint is on loopback; nothing ever connects to it (the directory only names it). */
  public static Shard shard(String name, int port) {
    return Shard.newBuilder().setName(name).setPrimary(Endpoint.newBuilder().setHost("127.0.0.1")
        .setPort(port).setDatabase("app")).build();
  }

  /**
   * The starts of {@code n} equal ranges over the whole INT64 key space, ascending; the first is
   * {@code Long.MIN_VALUE} (stored as "unbounded below").
   */
  public static long[] evenStarts(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("at least one range: " + n);
    }
    long step = Long.divideUnsigned(-1L, n);
    long[] starts = new long[n];
    for (int i = 0; i < n; i++) {
      // i * step < 2^64 as an unsigned number; adding it to MIN_VALUE walks the signed space upwards.
      starts[i] = Long.MIN_VALUE + i * step;
    }
    return starts;
  }

  /** Range i of {@code starts} as the API writes it: no start for the first, no end for the last. */
  public static RangeAssignment range(long[] starts, int i, String shard, long epoch) {
    KeyRange.Builder r = KeyRange.newBuilder();
    if (i > 0) {
      r.setStart(intKey(starts[i]));
    }
    if (i < starts.length - 1) {
      r.setEnd(intKey(starts[i + 1]));
    }
    return RangeAssignment.newBuilder().setRange(r).setShard(shard).setEpoch(epoch).build();
  }

  public static RangeAssignment range(long start, long end, String shard, long epoch) {
    return RangeAssignment.newBuilder().setRange(KeyRange.newBuilder().setStart(intKey(start))
        .setEnd(intKey(end))).setShard(shard).setEpoch(epoch).build();
  }

  public static Key intKey(long k) {
    return Key.newBuilder().setIntKey(k).build();
  }

  /** The canonical start bytes of range i (empty for the first: unbounded below). */
  public static byte[] startBytes(long[] starts, int i) {
    return i == 0 ? new byte[0] : Keys.encodeInt64(starts[i]);
  }

  /**
   * Every etcd record of one range keyspace with {@code ranges} ranges owned round-robin by
   * {@code shards} shards, plus the shards' records, exactly as the admin service writes them.
   */
  public static List<KeyValue> storeRecords(String keyspace, int ranges, int shards) {
    return storeRecords(PATHS, keyspace, ranges, shards);
  }

  /** {@link #storeRecords(String, int, int)} under another etcd prefix. */
  public static List<KeyValue> storeRecords(CatalogPaths paths, String keyspace, int ranges, int shards) {
    long[] starts = evenStarts(ranges);
    List<String> names = shardNames(shards);
    List<KeyValue> kvs = new ArrayList<>(ranges + shards + 1);
    for (int s = 0; s < shards; s++) {
      kvs.add(record(paths.shard(names.get(s)), shard(names.get(s), 5432 + s).toByteArray()));
    }
    kvs.add(record(paths.spec(keyspace), spec(keyspace).toByteArray()));
    for (int i = 0; i < ranges; i++) {
      kvs.add(record(paths.range(keyspace, startBytes(starts, i)),
          range(starts, i, names.get(i % shards), 1).toByteArray()));
    }
    return kvs;
  }

  /**
   * Writes {@link #storeRecords(CatalogPaths, String, int, int)} into a store, {@code opsPerTxn} puts per
   * transaction, the way a restore would (no admin RPC can create 100,000 ranges at once: CreateKeyspace
   * takes at most 1,024). Write before any directory server starts on the prefix: a server already
   * watching would apply every transaction as one change of the whole map. Returns the last revision.
   */
  public static long write(MetaStore store, CatalogPaths paths, String keyspace, int ranges, int shards,
                           int opsPerTxn) {
    List<KeyValue> kvs = storeRecords(paths, keyspace, ranges, shards);
    long revision = 0;
    for (int from = 0; from < kvs.size(); from += opsPerTxn) {
      Txn.Builder txn = Txn.builder();
      for (KeyValue kv : kvs.subList(from, Math.min(kvs.size(), from + opsPerTxn))) {
        txn.put(kv.key(), kv.value());
      }
      TxnResult r;
      try {
        r = store.commit(txn.build()).get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        throw new IllegalStateException("writing the records of keyspace '" + keyspace + "' failed at record "
            + from + " of " + kvs.size() + ": " + e, e);
      }
      if (!r.succeeded()) {
        throw new IllegalStateException("a transaction without compares did not succeed");
      }
      revision = r.revision();
    }
    return revision;
  }

  private static KeyValue record(String key, byte[] value) {
    return new KeyValue(key, value, LOAD_REVISION, LOAD_REVISION, 1, 0);
  }

  /** What a directory server does with a full read of etcd (DirectoryState.loadAndWatch). */
  public static DirectorySnapshot load(List<KeyValue> records) {
    return DirectorySnapshot.empty(0).apply(LOAD_REVISION, DECODER.toChanges(records));
  }

  /** A snapshot holding one range keyspace ({@link #KEYSPACE}) of {@code ranges} even ranges. */
  public static DirectorySnapshot rangeSnapshot(int ranges, int shards) {
    DirectorySnapshot s = load(storeRecords(KEYSPACE, ranges, shards));
    if (s.keyspace(KEYSPACE).broken() != null || s.keyspace(KEYSPACE).ranges().size() != ranges) {
      throw new IllegalStateException("fixture map is not what was written: " + s.keyspace(KEYSPACE).broken());
    }
    return s;
  }

  /**
   * The two records of a split of range {@code i} (1 &lt;= i &lt;= n-2, so both bounds are finite) at
   * its midpoint, as SplitRange writes them: the left part rewritten under the old start, the right
   * part new. Same owner and epoch, as SplitRange keeps them.
   */
  public record Split(RangeAssignment left, RangeAssignment right, long leftStart, long mid) {
    public List<MapChange> changes(String keyspace, long revision) {
      return List.of(
          MapChange.newBuilder().setKeyspace(keyspace).setRange(left).setModRevision(revision).build(),
          MapChange.newBuilder().setKeyspace(keyspace).setRange(right).setModRevision(revision).build());
    }

    /** The watch events etcd delivers for this split's transaction. */
    public List<WatchEvent> events(String keyspace, long revision) {
      return List.of(
          new WatchEvent(WatchEvent.Type.PUT, new KeyValue(PATHS.range(keyspace, Keys.encodeInt64(leftStart)),
              left.toByteArray(), LOAD_REVISION, revision, 2, 0)),
          new WatchEvent(WatchEvent.Type.PUT, new KeyValue(PATHS.range(keyspace, Keys.encodeInt64(mid)),
              right.toByteArray(), revision, revision, 1, 0)));
    }
  }

  public static Split split(long[] starts, int i, int shards) {
    if (i < 1 || i > starts.length - 2) {
      throw new IllegalArgumentException("split a range with finite bounds: 1 <= i <= " + (starts.length - 2));
    }
    long s = starts[i];
    long e = starts[i + 1];
    long mid = s + ((e - s) >>> 1);
    String owner = shardNames(shards).get(i % shards);
    return new Split(range(s, mid, owner, 1), range(mid, e, owner, 1), s, mid);
  }
}
