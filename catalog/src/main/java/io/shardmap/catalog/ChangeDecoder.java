package io.shardmap.catalog;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.strategy.Strategies;
import io.shardmap.core.strategy.StrategyKind;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.KeyspaceSpec;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RangeAssignment;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.KeyValue;
import io.shardmap.store.WatchEvent;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * How etcd records under {@link CatalogPaths} turn into {@link MapChange}s: what the directory server
 * applies from its watch and its full reads (records outside the maps, such as moving markers, migrations
 * and client presence, yield nothing).
 */
public final class ChangeDecoder {
  private final CatalogPaths paths;

  public ChangeDecoder(CatalogPaths paths) {
    this.paths = paths;
  }

  /**
   * Translates the events of one revision into map changes. A keyspace dropped in this revision yields a
   * single {@code keyspace_dropped} instead of one removal per record.
   *
   * @param specOf the spec of a keyspace as of the previous revision, or null (to decode keys of removed
   *              records and layouts by strategy); read only for keyspaces this batch touches
   */
  public List<MapChange> toChanges(List<WatchEvent> events, Function<String, KeyspaceSpec> specOf) {
    // Specs written by this batch; every other keyspace is looked up in the previous revision's map.
    Map<String, KeyspaceSpec> written = new HashMap<>();
    Function<String, KeyspaceSpec> known = ks -> written.containsKey(ks) ? written.get(ks) : specOf.apply(ks);
    Set<String> dropped = new HashSet<>();
    // Specs first: a keyspace created in this revision must be known before its layout is decoded.
    for (WatchEvent e : events) {
      CatalogPaths.Parsed p = paths.classify(e.kv().key());
      if (p != null && p.kind() == CatalogPaths.Kind.SPEC) {
        if (e.type() == WatchEvent.Type.PUT) {
          written.put(p.keyspace(), Records.decode(e.kv(), KeyspaceSpec.parser()));
        } else {
          dropped.add(p.keyspace());
        }
      }
    }
    List<MapChange> out = new ArrayList<>();
    for (WatchEvent e : events) {
      CatalogPaths.Parsed p = paths.classify(e.kv().key());
      if (p == null) {
        continue;
      }
      boolean put = e.type() == WatchEvent.Type.PUT;
      if (p.keyspace() != null && dropped.contains(p.keyspace()) && p.kind() != CatalogPaths.Kind.SPEC) {
        continue;
      }
      MapChange.Builder c = MapChange.newBuilder().setModRevision(e.kv().modRevision());
      switch (p.kind()) {
        case SHARD -> {
          if (put) {
            c.setShard(Records.decode(e.kv(), Shard.parser()));
          } else {
            c.setShardRemoved(p.name());
          }
        }
        case SPEC -> {
          c.setKeyspace(p.keyspace());
          if (put) {
            c.setSpec(written.get(p.keyspace()));
          } else {
            c.setKeyspaceDropped(true);
          }
        }
        case LAYOUT -> {
          KeyspaceSpec spec = known.apply(p.keyspace());
          if (!put || spec == null) {
            continue;
          }
          c.setKeyspace(p.keyspace());
          decodeLayout(spec.getStrategy(), e.kv(), c);
        }
        case RANGE -> {
          KeyspaceSpec spec = known.apply(p.keyspace());
          if (spec == null) {
            continue;
          }
          c.setKeyspace(p.keyspace());
          if (put) {
            c.setRange(Records.decode(e.kv(), RangeAssignment.parser()));
          } else {
            c.setRangeRemovedStart(Keys.toProto(spec.getKeyType(), p.bytes()));
          }
        }
        case ENTRY -> {
          KeyspaceSpec spec = known.apply(p.keyspace());
          if (spec == null) {
            continue;
          }
          c.setKeyspace(p.keyspace());
          if (put) {
            c.setEntry(Records.decode(e.kv(), DirectoryEntry.parser()));
          } else {
            c.setEntryRemoved(Keys.toProto(spec.getKeyType(), p.bytes()));
          }
        }
        default -> {
          continue;
        }
      }
      out.add(c.build());
    }
    return out;
  }

  /** Map changes that rebuild the whole directory from a full read (each with its own mod revision). */
  public List<MapChange> toChanges(List<KeyValue> all) {
    List<WatchEvent> events = new ArrayList<>(all.size());
    for (KeyValue kv : all) {
      events.add(new WatchEvent(WatchEvent.Type.PUT, kv));
    }
    return toChanges(events, ks -> null);
  }

  private static void decodeLayout(Strategy strategy, KeyValue kv, MapChange.Builder c) {
    StrategyKind k = Strategies.find(strategy);
    if (k == null || k.layoutCase() == MapChange.ChangeCase.CHANGE_NOT_SET) {
      throw new ShardmapException(ErrorCode.INTERNAL, "keyspace layout record " + kv.key()
          + " for strategy " + strategy);
    }
    try {
      k.decodeLayout(kv.value(), c);
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      throw new ShardmapException(ErrorCode.INTERNAL, "etcd record " + kv.key() + " is not a valid "
          + "protobuf value", e);
    }
  }


}
