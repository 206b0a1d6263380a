"""Local emulators of cloud APIs, close enough to the published API that the real client
libraries run against them unmodified (paths, parameters, paging, error bodies)."""
