// The control codec is part of what every user of Bus1Core speaks.
@_exported import Bus1Wire
