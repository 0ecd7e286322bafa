// The in-memory MongoDB stand-in (mongo-java-server's memory backend) on 127.0.0.1:<port>,
// for scripts/services.sh with PIPELINE_MONGO_ENGINE=memory. Usage: MemoryMongo <port>.
// Everything is lost when it stops; it answers until SIGTERM.
// mongo-java-server 1.47 knows `isMaster` but not its modern name `hello` (which the pipeline's
// rate limiter sends to read the server's clock): `hello` is answered as `isMaster`, with
// isWritablePrimary and localTime added.
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

public final class MemoryMongo {
    static final class Backend extends MemoryBackend {
        @Override
        public Document handleCommand(Channel channel, String database, String command,
                                      Document query) {
            if ("hello".equalsIgnoreCase(command)) {
                Document d = super.handleCommand(channel, database, "isMaster", query);
                d.put("isWritablePrimary", Boolean.TRUE);
                if (!d.containsKey("localTime"))
                    d.put("localTime", new java.util.Date());
                return d;
            }
            return super.handleCommand(channel, database, command, query);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: MemoryMongo PORT");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        MongoServer server = new MongoServer(new Backend());
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        server.bind("127.0.0.1", port);
        System.out.println("mongo-java-server (memory backend) listening on 127.0.0.1:" + port);
        Thread.currentThread().join();
    }
}
