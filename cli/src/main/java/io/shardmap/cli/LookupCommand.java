package io.shardmap.cli;

import com.google.protobuf.ByteString;
import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.BatchLookupRequest;
import io.shardmap.proto.v1.BatchLookupResponse;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.LookupRequest;
import io.shardmap.proto.v1.LookupResponse;
import io.shardmap.proto.v1.Shard;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(name = "lookup",
    description = {"Find the shard that owns each key.",
      "One key uses Lookup and shows the shard's endpoints; several use one BatchLookup, answered from "
          + "one snapshot. Keys are parsed with the keyspace's key type: int64 keys are decimals, bytes keys "
          + "are text, 'quoted text' or 0x-hex."})
final class LookupCommand extends Cmd {
  @Parameters(index = "0", paramLabel = "KEYSPACE")
  String keyspace;

  @Parameters(index = "1..*", arity = "1..*", paramLabel = "KEY")
  List<String> keys;

  @Override
  void execute(ShardmapCtl ctl) {
    KeyType type = ctl.keyspace(keyspace).getKeyType();
    List<byte[]> canonical = new ArrayList<>(keys.size());
    for (int i = 0; i < keys.size(); i++) {
      canonical.add(KeyRange.parseKey(type, keys.get(i), keys.size() == 1 ? "key" : "keys[" + i + "]"));
    }
    if (canonical.size() == 1) {
      single(ctl, type, canonical.get(0));
    } else {
      batch(ctl, type, canonical);
    }
  }

  private void single(ShardmapCtl ctl, KeyType type, byte[] key) {
    LookupResponse r = ctl.read().lookup(LookupRequest.newBuilder().setKeyspace(keyspace)
        .setKey(Keys.toProto(type, key)).build());
    warnIfStale(r.getFreshness());
    if (printedJson(r)) {
      return;
    }
    Map<String, String> v = new LinkedHashMap<>();
    v.put("key", Text.key(type, key));
    v.put("shard", r.getRoute().getShard());
    v.put("epoch", Long.toString(r.getRoute().getEpoch()));
    if (r.getRoute().hasRange()) {
      v.put("range", Text.range(r.getRoute().getRange()));
    }
    if (r.hasShard()) {
      Shard s = r.getShard();
      v.put("primary", Text.endpoint(s.getPrimary()));
      v.put("replicas", s.getReplicasCount() == 0 ? "-"
          : s.getReplicasList().stream().map(Text::endpoint).collect(Collectors.joining(", ")));
      v.put("region", Text.orDash(s.getRegion()));
      v.put("state", Text.state(s.getState()));
    }
    v.put("revision", Long.toString(r.getFreshness().getRevision()));
    keyValues(v);
  }

  private void batch(ShardmapCtl ctl, KeyType type, List<byte[]> keys) {
    BatchLookupRequest.Builder req = BatchLookupRequest.newBuilder().setKeyspace(keyspace);
    for (byte[] k : keys) {
      if (type == KeyType.KEY_TYPE_INT64) {
        req.addIntKeys(Keys.decodeInt64(k));
      } else {
        req.addBytesKeys(ByteString.copyFrom(k));
      }
    }
    BatchLookupResponse r = ctl.read().batchLookup(req.build());
    warnIfStale(r.getFreshness());
    if (r.getShardIndexesCount() != keys.size() || r.getEpochsCount() != keys.size()) {
      throw new IllegalStateException("the server answered " + r.getShardIndexesCount() + " routes for "
          + keys.size() + " keys");
    }
    if (printedJson(r)) {
      return;
    }
    List<List<String>> rows = new ArrayList<>();
    for (int i = 0; i < keys.size(); i++) {
      int idx = r.getShardIndexes(i);
      rows.add(List.of(Text.key(type, keys.get(i)), idx < 0 ? "(none)" : r.getShards(idx),
          idx < 0 ? "-" : Long.toString(r.getEpochs(i))));
    }
    table(List.of("KEY", "SHARD", "EPOCH"), rows);
  }
}
