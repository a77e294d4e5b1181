package io.shardmap.cli;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.DeleteDirectoryEntriesRequest;
import io.shardmap.proto.v1.DeleteDirectoryEntriesResponse;
import io.shardmap.proto.v1.DirectoryEntry;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.PutDirectoryEntriesRequest;
import io.shardmap.proto.v1.PutDirectoryEntriesResponse;
import io.shardmap.proto.v1.SetDirectoryFallbackRequest;
import io.shardmap.proto.v1.SetDirectoryFallbackResponse;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "directory", description = "Change the entries and fallback of a directory keyspace.",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {DirectoryCommands.Put.class, DirectoryCommands.Delete.class, DirectoryCommands.Fallback.class})
final class DirectoryCommands {

  @Command(name = "put", description = {"Set KEY -> SHARD entries in one atomic change (the server takes up to "
      + "100 per call).", "Each KEY=SHARD is split at its last '=' (shard names never contain one)."})
  static final class Put extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "KEY=SHARD")
    List<String> entries;

    @Override
    void execute(ShardmapCtl ctl) {
      KeyType type = ctl.keyspace(keyspace).getKeyType();
      PutDirectoryEntriesRequest.Builder req = PutDirectoryEntriesRequest.newBuilder().setKeyspace(keyspace);
      for (int i = 0; i < entries.size(); i++) {
        String e = entries.get(i);
        int eq = e.lastIndexOf('=');
        if (eq <= 0 || eq == e.length() - 1) {
          throw usage("'" + e + "' is not KEY=SHARD");
        }
        byte[] key = KeyRange.parseKey(type, e.substring(0, eq), "entries[" + i + "].key");
        req.addEntries(DirectoryEntry.newBuilder().setKey(Keys.toProto(type, key)).setShard(e.substring(eq + 1)));
      }
      PutDirectoryEntriesResponse r = ctl.admin().putDirectoryEntries(req.build());
      if (printedJson(r)) {
        return;
      }
      line("put " + r.getEntriesCount() + " entries into " + keyspace + " (revision " + r.getRevision() + ")");
      Layouts.entries(ctl.out, r.getEntriesList());
    }
  }

  @Command(name = "delete", description = "Delete entries; their keys then go to the fallback shard, if any.")
  static final class Delete extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "KEY")
    List<String> keys;

    @Override
    void execute(ShardmapCtl ctl) {
      KeyType type = ctl.keyspace(keyspace).getKeyType();
      DeleteDirectoryEntriesRequest.Builder req = DeleteDirectoryEntriesRequest.newBuilder().setKeyspace(keyspace);
      for (int i = 0; i < keys.size(); i++) {
        req.addKeys(Keys.toProto(type, KeyRange.parseKey(type, keys.get(i), "keys[" + i + "]")));
      }
      DeleteDirectoryEntriesResponse r = ctl.admin().deleteDirectoryEntries(req.build());
      if (printedJson(r)) {
        return;
      }
      line("deleted " + r.getDeleted() + " of " + keys.size() + " entries from " + keyspace + " (revision "
          + r.getRevision() + ")");
    }
  }

  @Command(name = "fallback", description = "Set the shard for keys without an entry, or remove it with --clear "
      + "(such keys are then NOT_FOUND).")
  static final class Fallback extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", arity = "0..1", paramLabel = "SHARD")
    String shard;

    @Option(names = "--clear", description = "Remove the fallback.")
    boolean clear;

    @Override
    void execute(ShardmapCtl ctl) {
      if ((shard == null) == !clear) {
        throw usage("give either SHARD or --clear");
      }
      SetDirectoryFallbackResponse r = ctl.admin().setDirectoryFallback(SetDirectoryFallbackRequest.newBuilder()
          .setKeyspace(keyspace).setShard(clear ? "" : shard).build());
      if (printedJson(r)) {
        return;
      }
      if (r.getDirectory().getFallbackShard().isEmpty()) {
        line(keyspace + " has no fallback shard now (revision " + r.getRevision() + ")");
      } else {
        line("fallback of " + keyspace + " is " + r.getDirectory().getFallbackShard() + " (epoch "
            + r.getDirectory().getFallbackEpoch() + ", revision " + r.getRevision() + ")");
      }
    }
  }
}
